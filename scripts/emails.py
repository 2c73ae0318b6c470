#!/usr/bin/env python3
"""Prints the emails in a moto state dump (stdin): recipient, subject, links."""
import json
import re
import sys

state = json.load(sys.stdin)
for message in state.get("ses", {}).get("Message", []):
    to = ", ".join(message.get("destinations", {}).get("ToAddresses", []))
    print(f"to:      {to}\nsubject: {message.get('subject', '')}")
    for link in sorted(set(re.findall(r'href="([^"]+)"', message.get("body", "")))):
        print(f"link:    {link}")
    print()
