//! Meta webhook notifications shaped like the WhatsApp Cloud API reference,
//! from signature to events, identities and delivery states.

// In a module so that `cargo test -p nuvem-domain whatsapp` selects these too.
mod whatsapp {
    use nuvem_domain::whatsapp::identity::{
        CustomerIds, CustomerKey, IdentityLink, IdentityMove, Recipient, identity_move,
    };
    use nuvem_domain::whatsapp::message::{
        InboundMessage, InteractiveReply, MediaType, MessageKind, SystemNotice,
    };
    use nuvem_domain::whatsapp::signature::{sign, verify};
    use nuvem_domain::whatsapp::status::{DeliveryState, DeliveryStatus, fold_statuses};
    use nuvem_domain::whatsapp::webhook::{
        BusinessNumber, Contact, Inbound, ItemKind, Notification, SkippedChange, WebhookError,
        parse_notification,
    };

    const EVERY_MESSAGE_TYPE: &[u8] = include_bytes!("fixtures/whatsapp/every_message_type.json");
    const BATCHED: &[u8] = include_bytes!("fixtures/whatsapp/batched.json");
    const BSUID_ONLY: &[u8] = include_bytes!("fixtures/whatsapp/bsuid_only.json");
    const SYSTEM_CHANGES: &[u8] = include_bytes!("fixtures/whatsapp/system_changes.json");
    const STATUSES: &[u8] = include_bytes!("fixtures/whatsapp/statuses.json");
    const UNKNOWN_TYPE: &[u8] = include_bytes!("fixtures/whatsapp/unknown_type.json");

    const BSUID: &str = "US.13491208655302741918";

    fn parse(body: &[u8]) -> Notification {
        parse_notification(body).expect("a valid notification")
    }

    fn messages(n: &Notification) -> Vec<(&BusinessNumber, Option<&Contact>, &InboundMessage)> {
        n.events
            .iter()
            .filter_map(|e| match e {
                Inbound::Message {
                    number,
                    contact,
                    message,
                } => Some((number, contact.as_ref(), message)),
                _ => None,
            })
            .collect()
    }

    fn kind_of<'n>(n: &'n Notification, id: &str) -> &'n MessageKind {
        &messages(n)
            .into_iter()
            .find(|(_, _, m)| m.id == id)
            .unwrap_or_else(|| panic!("no message {id}"))
            .2
            .kind
    }

    #[test]
    fn the_signature_covers_the_fixture_bytes_as_sent() {
        let header = sign("app-secret", EVERY_MESSAGE_TYPE);
        assert_eq!(
            verify("app-secret", Some(&header), EVERY_MESSAGE_TYPE),
            Ok(())
        );
        let reserialised = serde_json::to_vec(
            &serde_json::from_slice::<serde_json::Value>(EVERY_MESSAGE_TYPE).unwrap(),
        )
        .unwrap();
        assert!(verify("app-secret", Some(&header), &reserialised).is_err());
    }

    #[test]
    fn every_message_type() {
        let n = parse(EVERY_MESSAGE_TYPE);
        assert!(n.skipped.is_empty());
        let all = messages(&n);
        assert_eq!(all.len(), 17);
        for (number, contact, _) in &all {
            assert_eq!(number.waba_id, "102290129340398");
            assert_eq!(number.phone_number_id, "106540352242922");
            assert_eq!(number.display_phone_number, "15550783881");
            let contact = contact.expect("the contact of 16505551234");
            assert_eq!(contact.name.as_deref(), Some("Sheena Nelson"));
            assert_eq!(contact.user_id.as_deref(), Some(BSUID));
        }

        assert_eq!(
            kind_of(&n, "wamid.text"),
            &MessageKind::Text {
                body: "Does it come in another color? É verdade / ok".into()
            }
        );
        for (id, expected) in [
            ("wamid.image", MediaType::Image),
            ("wamid.audio", MediaType::Audio),
            ("wamid.video", MediaType::Video),
            ("wamid.document", MediaType::Document),
            ("wamid.sticker", MediaType::Sticker),
        ] {
            let MessageKind::Media { media_type, media } = kind_of(&n, id) else {
                panic!("{id}")
            };
            assert_eq!(*media_type, expected);
            assert!(media.id.starts_with("10033834213872"));
            assert!(media.sha256.is_some() && media.mime_type.is_some());
            assert_eq!(media.voice, expected == MediaType::Audio);
            assert_eq!(media.animated, expected == MediaType::Sticker);
            assert_eq!(
                media.filename.is_some(),
                expected == MediaType::Document,
                "{id}"
            );
        }
        let MessageKind::Location(location) = kind_of(&n, "wamid.location") else {
            panic!()
        };
        assert_eq!(
            (location.latitude, location.longitude),
            (37.483307, -122.148981)
        );
        assert_eq!(location.name.as_deref(), Some("Meta Headquarters"));
        let MessageKind::Contacts(cards) = kind_of(&n, "wamid.contacts") else {
            panic!()
        };
        assert_eq!(cards[0]["phones"][0]["wa_id"], "19405551234");
        assert_eq!(
            kind_of(&n, "wamid.button_reply"),
            &MessageKind::Interactive(InteractiveReply::Button {
                id: "change-button".into(),
                title: "Change".into()
            })
        );
        assert_eq!(
            kind_of(&n, "wamid.list_reply"),
            &MessageKind::Interactive(InteractiveReply::List {
                id: "priority_express".into(),
                title: "Priority Mail Express".into(),
                description: Some("Next Day to 2 Days".into()),
            })
        );
        let MessageKind::Interactive(InteractiveReply::Flow { response_json, .. }) =
            kind_of(&n, "wamid.nfm_reply")
        else {
            panic!()
        };
        let response: serde_json::Value = serde_json::from_str(response_json).unwrap();
        assert_eq!(response["size"], "M");
        assert_eq!(
            kind_of(&n, "wamid.button"),
            &MessageKind::Button {
                payload: Some("Unsubscribe from Promos".into()),
                text: "Unsubscribe from Promos".into()
            }
        );
        assert_eq!(
            kind_of(&n, "wamid.reaction"),
            &MessageKind::Reaction {
                message_id: "wamid.sent1".into(),
                emoji: Some("👍".into())
            }
        );
        assert_eq!(
            kind_of(&n, "wamid.unreaction"),
            &MessageKind::Reaction {
                message_id: "wamid.sent1".into(),
                emoji: None
            }
        );
        let MessageKind::Order(order) = kind_of(&n, "wamid.order") else {
            panic!()
        };
        assert_eq!(order["product_items"][0]["quantity"], 2);
        assert_eq!(kind_of(&n, "wamid.welcome"), &MessageKind::RequestWelcome);

        let (_, _, forwarded) = all
            .iter()
            .find(|(_, _, m)| m.id == "wamid.forwarded")
            .unwrap();
        let context = forwarded.context.as_ref().unwrap();
        assert!(context.forwarded && context.frequently_forwarded && context.id.is_none());
        assert_eq!(forwarded.referral.as_ref().unwrap()["source_type"], "ad");
        let (_, _, reply) = all
            .iter()
            .find(|(_, _, m)| m.id == "wamid.list_reply")
            .unwrap();
        assert_eq!(
            reply.context.as_ref().unwrap().id.as_deref(),
            Some("wamid.sent2")
        );

        let bot: Vec<_> = all.iter().filter_map(|(_, _, m)| m.bot_text()).collect();
        assert_eq!(
            bot,
            [
                "Does it come in another color? É verdade / ok",
                // media captions
                "Black Ceramic Mug",
                "unboxing",
                "Invoice",
                "Change",
                "Priority Mail Express",
                "Unsubscribe from Promos",
                "from the ad"
            ]
        );
    }

    #[test]
    fn several_entries_and_changes_in_one_post() {
        let n = parse(BATCHED);
        assert_eq!(
            n.skipped,
            [
                SkippedChange {
                    waba_id: "102290129340398".into(),
                    field: "account_update".into()
                },
                SkippedChange {
                    waba_id: "200000000000001".into(),
                    field: "message_template_status_update".into()
                },
            ]
        );
        let summary: Vec<(String, String)> = n
            .events
            .iter()
            .map(|e| match e {
                Inbound::Message {
                    number, message, ..
                } => (number.phone_number_id.clone(), message.id.clone()),
                Inbound::Status { number, status } => {
                    (number.phone_number_id.clone(), status.id.clone())
                }
                Inbound::Error { number, error } => {
                    (number.phone_number_id.clone(), error.code.to_string())
                }
                Inbound::Unreadable { .. } => panic!("{e:?}"),
            })
            .collect();
        let expected = [
            ("106540352242922", "wamid.a1"),
            ("106540352242923", "wamid.out1"),
            ("300000000000001", "wamid.b1"),
            ("300000000000001", "wamid.b2"),
            ("300000000000001", "131000"),
        ];
        assert_eq!(
            summary,
            expected.map(|(a, b)| (a.to_string(), b.to_string()))
        );
        let Inbound::Error { number, error } = &n.events[4] else {
            panic!()
        };
        assert_eq!(number.waba_id, "200000000000001");
        assert_eq!(error.details.as_deref(), Some("Unknown error"));
        let bruno = messages(&n)[1].1.unwrap();
        assert_eq!(bruno.name.as_deref(), Some("Bruno"));
    }

    #[test]
    fn a_bsuid_only_contact_and_message() {
        let n = parse(BSUID_ONLY);
        let [(_, contact, message)] = messages(&n)[..] else {
            panic!("{n:?}")
        };
        assert_eq!(message.from, None);
        assert_eq!(message.from_user_id.as_deref(), Some(BSUID));
        assert_eq!(
            message.from_parent_user_id.as_deref(),
            Some("US.ENT.11815799212886844830")
        );
        let contact = contact.unwrap();
        assert_eq!(contact.wa_id, None);
        assert_eq!(contact.username.as_deref(), Some("@sheena"));
        assert_eq!(
            contact.parent_user_id.as_deref(),
            Some("US.ENT.11815799212886844830")
        );

        let ids = CustomerIds::of_message(message, Some(contact));
        assert_eq!(ids.key(), Some(CustomerKey::User(BSUID.into())));
        assert_eq!(ids.key().unwrap().as_key(), format!("u:{BSUID}"));
        assert_eq!(ids.link(), None);
        assert_eq!(ids.reply_to(), Some(Recipient::User(BSUID.into())));
    }

    #[test]
    fn phone_and_bsuid_are_linked_when_both_arrive() {
        let n = parse(EVERY_MESSAGE_TYPE);
        let (_, contact, message) = messages(&n)[1]; // the image: `from` only
        assert_eq!(message.from_user_id, None);
        let ids = CustomerIds::of_message(message, contact);
        assert_eq!(ids.key(), Some(CustomerKey::User(BSUID.into())));
        assert_eq!(
            ids.link(),
            Some(IdentityLink {
                phone: CustomerKey::Phone("16505551234".into()),
                user: CustomerKey::User(BSUID.into()),
            })
        );
        assert_eq!(ids.reply_to(), Some(Recipient::Phone("16505551234".into())));
    }

    #[test]
    fn number_and_user_id_changes() {
        let n = parse(SYSTEM_CHANGES);
        let all = messages(&n);
        assert_eq!(all.len(), 2);
        assert!(all.iter().all(|(_, contact, _)| contact.is_none()));
        let MessageKind::System(notice) = &all[0].2.kind else {
            panic!()
        };
        assert_eq!(notice.system_type, SystemNotice::USER_CHANGED_NUMBER);
        assert_eq!(notice.wa_id.as_deref(), Some("12195555358"));
        assert_eq!(
            identity_move(all[0].2),
            Some(IdentityMove {
                old: CustomerKey::Phone("16505551234".into()),
                new: CustomerKey::Phone("12195555358".into()),
            })
        );
        assert_eq!(
            identity_move(all[1].2),
            Some(IdentityMove {
                old: CustomerKey::User(BSUID.into()),
                new: CustomerKey::User("US.98765432109876543210".into()),
            })
        );
        assert!(all.iter().all(|(_, _, m)| m.bot_text().is_none()));
    }

    #[test]
    fn statuses_of_each_kind() {
        let n = parse(STATUSES);
        let statuses: Vec<_> = n
            .events
            .iter()
            .map(|e| match e {
                Inbound::Status { status, .. } => status,
                other => panic!("{other:?}"),
            })
            .collect();
        let kinds: Vec<_> = statuses.iter().map(|s| s.status.clone()).collect();
        assert_eq!(
            kinds,
            [
                DeliveryStatus::Sent,
                DeliveryStatus::Delivered,
                DeliveryStatus::Read,
                DeliveryStatus::Played,
                DeliveryStatus::Failed,
                DeliveryStatus::Unknown("held_for_quality_assessment".into()),
            ]
        );
        let sent = statuses[0];
        assert_eq!(sent.recipient_user_id.as_deref(), Some(BSUID));
        assert_eq!(
            sent.conversation.as_ref().unwrap().origin_type.as_deref(),
            Some("utility")
        );
        assert_eq!(
            CustomerIds::of_status(sent).key(),
            Some(CustomerKey::User(BSUID.into()))
        );

        // the three statuses of wamid.out, in any order, end at `read`
        let out: Vec<_> = statuses
            .iter()
            .copied()
            .filter(|s| s.id == "wamid.out")
            .collect();
        let state = fold_statuses(out.iter().rev().copied()).unwrap();
        assert_eq!(state.status, DeliveryStatus::Read);
        assert_eq!(state.status_at, 1_750_263_772);
        assert_eq!(state.failure, None);
        let pricing = state.pricing.unwrap();
        assert_eq!(pricing.at, 1_750_263_771);
        assert_eq!(pricing.pricing.category.as_deref(), Some("utility"));

        let failed = statuses[4];
        let state = DeliveryState::from_update(failed);
        assert!(state.is_failed());
        let failure = state.failure.clone().unwrap();
        let error = failure.error.unwrap();
        assert_eq!(error.code, 131049);
        assert!(error.details.unwrap().contains("healthy ecosystem"));
        assert_eq!(state.pricing.unwrap().pricing.billable, Some(false));
    }

    #[test]
    fn an_unknown_type_is_kept_with_its_raw_json() {
        let n = parse(UNKNOWN_TYPE);
        let all = messages(&n);
        assert_eq!(all.len(), 3, "one odd message does not hide the others");
        let MessageKind::Unsupported { message_type, raw } = &all[0].2.kind else {
            panic!()
        };
        assert_eq!(message_type, "poll_vote");
        assert_eq!(raw["poll_vote"]["options"][1], 3);
        assert_eq!(raw["id"], "wamid.poll");

        let unsupported = all[1].2;
        let MessageKind::Unsupported { message_type, .. } = &unsupported.kind else {
            panic!()
        };
        assert_eq!(message_type, "unsupported");
        assert_eq!(unsupported.errors[0].code, 131051);
        assert_eq!(all[2].2.bot_text(), Some("still read"));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(matches!(
            parse_notification(b"not json"),
            Err(WebhookError::NotJson(_))
        ));
        assert_eq!(
            parse_notification(br#"{"object":"instagram","entry":[]}"#),
            Err(WebhookError::NotWhatsApp("instagram".into()))
        );
        let no_entry = parse_notification(br#"{"object":"whatsapp_business_account"}"#);
        assert!(matches!(no_entry, Err(WebhookError::Shape { .. })));
        let bad_messages = parse_notification(
            br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[
            {"field":"messages","value":{"metadata":{"phone_number_id":"2"},"messages":{}}}]}]}"#,
        );
        assert_eq!(
            bad_messages.unwrap_err().to_string(),
            "entry[0].changes[0].value.messages: must be an array"
        );
    }

    #[test]
    fn an_unreadable_message_is_reported_not_fatal() {
        let n = parse(
        br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[
            {"field":"messages","value":{"metadata":{"phone_number_id":"2","display_phone_number":"3"},
             "messages":[{"type":"text","text":{"body":"no id"}},
                         {"id":"wamid.ok","timestamp":"1","type":"text","text":{"body":"ok"}}]}}]}]}"#,
    );
        assert!(matches!(
            &n.events[0],
            Inbound::Unreadable {
                item: ItemKind::Message,
                ..
            }
        ));
        assert_eq!(messages(&n)[0].2.bot_text(), Some("ok"));
    }
}
