//! RPA carriers and clients, in their account's partition:
//! `RPACARRIER#<code>` and `RPACLIENT#<id>`. A client's identity (CNPJ,
//! carrier, unit, service) is claimed by `RPAKEY#<digest>` in the same
//! transaction that writes the client, so two requests (or two rows of two
//! imports) can never make the same client twice. gsi1 lists a carrier's
//! clients (`RPACLIENTS#<account>#<carrier>`).

use aws_sdk_dynamodb::types::TransactWriteItem;
use chrono::{DateTime, Utc};
use nuvem_domain::keys::Actor;
use nuvem_domain::rpa::carrier::{CarrierCode, CarrierSettings};
use nuvem_domain::rpa::client::ClientSettings;
use serde::{Deserialize, Serialize};

use super::{Index, Item, ListError, Listing, Page, Store, StoreError, s};
use crate::table_keys as k;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CarrierRecord {
    pub code: CarrierCode,
    pub account_id: String,
    #[serde(flatten)]
    pub settings: CarrierSettings,
    pub created_at: DateTime<Utc>,
    pub created_by: Actor,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Actor,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientRecord {
    pub id: String,
    pub account_id: String,
    #[serde(flatten)]
    pub settings: ClientSettings,
    /// [`ClientSettings::unique_key`] when written: the claim to release
    /// when the identity changes.
    pub unique_key: String,
    /// The portal password sealed for this account and client; never
    /// returned by the API, never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_password: Option<String>,
    pub created_at: DateTime<Utc>,
    pub created_by: Actor,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Actor,
    /// Counts the client's changes; each is conditional on the one read.
    #[serde(default)]
    pub version: u64,
}

/// Why a client could not be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientWriteError {
    /// The account has no carrier of the client's code.
    NoCarrier,
    /// Another client of the account has the same CNPJ, carrier, unit and
    /// service.
    Taken,
    /// The client was changed or deleted since it was read.
    Changed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteCarrierOutcome {
    Deleted,
    NotFound,
    /// Clients still name the carrier.
    InUse,
}

/// Which clients a listing shows.
#[derive(Debug, Clone, Default)]
pub struct ClientFilter {
    pub carrier: Option<CarrierCode>,
    pub active: Option<bool>,
    /// Normalized CNPJ.
    pub cnpj: Option<String>,
}

fn carrier_sk(code: &CarrierCode) -> String {
    k::rpa_carrier_sk(code.as_str())
}

impl Store {
    fn carrier_item(&self, carrier: &CarrierRecord) -> Result<Item, StoreError> {
        let mut item: Item = serde_dynamo::to_item(carrier)?;
        item.insert(k::PK.into(), s(k::account_pk(&carrier.account_id)));
        item.insert(k::SK.into(), s(carrier_sk(&carrier.code)));
        Ok(item)
    }

    /// `false`: the account has a carrier of this code already.
    pub async fn create_carrier(&self, carrier: &CarrierRecord) -> Result<bool, StoreError> {
        let put = self.put(
            self.carrier_item(carrier)?,
            Some("attribute_not_exists(pk)"),
        )?;
        Ok(self.write_all(vec![put]).await?.is_ok())
    }

    pub async fn get_carrier(
        &self,
        account_id: &str,
        code: &CarrierCode,
    ) -> Result<Option<CarrierRecord>, StoreError> {
        self.get(k::account_pk(account_id), &carrier_sk(code)).await
    }

    /// An account's carriers by code.
    pub async fn list_carriers(
        &self,
        account_id: &str,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<CarrierRecord>, ListError> {
        let listing = Listing::Prefix {
            pk: k::account_pk(account_id),
            sk_prefix: k::RPA_CARRIER_PREFIX,
            newest_first: false,
        };
        self.page(listing, limit, cursor).await
    }

    /// Every carrier of an account, by code (for imports: a few dozen).
    pub async fn all_carriers(&self, account_id: &str) -> Result<Vec<CarrierRecord>, StoreError> {
        let query = self
            .sk_prefix(k::account_pk(account_id), k::RPA_CARRIER_PREFIX)
            .consistent_read(true);
        self.query_all(query, 1000).await
    }

    /// `false`: the carrier is gone.
    pub async fn update_carrier(&self, carrier: &CarrierRecord) -> Result<bool, StoreError> {
        let put = self.put(self.carrier_item(carrier)?, Some("attribute_exists(pk)"))?;
        Ok(self.write_all(vec![put]).await?.is_ok())
    }

    /// Deletes a carrier no client names. A client created while this runs
    /// may still name it; its downloads then fail as a business error
    /// ("no such carrier") until it is given another.
    pub async fn delete_carrier(
        &self,
        account_id: &str,
        code: &CarrierCode,
    ) -> Result<DeleteCarrierOutcome, StoreError> {
        let named = self
            .db
            .query()
            .table_name(&self.table)
            .index_name(k::GSI1)
            .key_condition_expression("gsi1pk = :p")
            .expression_attribute_values(":p", s(k::clients_of_carrier(account_id, code.as_str())))
            .limit(1)
            .send()
            .await
            .map_err(StoreError::sdk)?;
        if named.count > 0 {
            return Ok(DeleteCarrierOutcome::InUse);
        }
        let delete = self.delete_item(
            k::account_pk(account_id),
            carrier_sk(code),
            "attribute_exists(pk)",
        )?;
        Ok(match self.write_all(vec![delete]).await? {
            Ok(()) => DeleteCarrierOutcome::Deleted,
            Err(()) => DeleteCarrierOutcome::NotFound,
        })
    }

    fn client_item(&self, client: &ClientRecord) -> Result<Item, StoreError> {
        let mut item: Item = serde_dynamo::to_item(client)?;
        item.insert(k::PK.into(), s(k::account_pk(&client.account_id)));
        item.insert(k::SK.into(), s(k::rpa_client_sk(&client.id)));
        item.insert(
            k::GSI1PK.into(),
            s(k::clients_of_carrier(
                &client.account_id,
                client.settings.carrier.as_str(),
            )),
        );
        item.insert(k::GSI1SK.into(), s(&client.id));
        Ok(item)
    }

    /// The claim of a client's identity, pointing at the client.
    fn client_key_claim(&self, client: &ClientRecord) -> Result<TransactWriteItem, StoreError> {
        self.claim_item(
            k::account_pk(&client.account_id),
            k::rpa_client_key_sk(&client.unique_key),
            "client_id",
            &client.id,
        )
    }

    fn carrier_exists(&self, client: &ClientRecord) -> Result<TransactWriteItem, StoreError> {
        self.exists_check(
            k::account_pk(&client.account_id),
            carrier_sk(&client.settings.carrier),
        )
    }

    /// Writes a new client with the claim of its identity, all or nothing.
    /// With `check_carrier`, its carrier must exist at that moment (imports
    /// check every row's carrier against one listing instead, so that
    /// their rows, written side by side, do not contend for the carrier's
    /// item).
    pub async fn create_client(
        &self,
        client: &ClientRecord,
        check_carrier: bool,
    ) -> Result<Result<(), ClientWriteError>, StoreError> {
        let mut items = vec![
            self.client_key_claim(client)?,
            self.put(self.client_item(client)?, Some("attribute_not_exists(pk)"))?,
        ];
        if check_carrier {
            items.push(self.carrier_exists(client)?);
        }
        Ok(match self.transact_checked(items).await? {
            Ok(()) => Ok(()),
            Err(failed) if failed.first() == Some(&true) => Err(ClientWriteError::Taken),
            Err(failed) if failed.get(2) == Some(&true) => Err(ClientWriteError::NoCarrier),
            Err(failed) => return Err(StoreError::Refused(failed)),
        })
    }

    pub async fn get_client(
        &self,
        account_id: &str,
        client_id: &str,
    ) -> Result<Option<ClientRecord>, StoreError> {
        self.get(k::account_pk(account_id), &k::rpa_client_sk(client_id))
            .await
    }

    /// The id of the account's client with this identity, if any.
    pub async fn client_id_by_key(
        &self,
        account_id: &str,
        unique_key: &str,
    ) -> Result<Option<String>, StoreError> {
        #[derive(Deserialize)]
        struct Claim {
            client_id: String,
        }
        let claim: Option<Claim> = self
            .get(k::account_pk(account_id), &k::rpa_client_key_sk(unique_key))
            .await?;
        Ok(claim.map(|c| c.client_id))
    }

    /// Replaces `current` by `next` if nobody changed it since it was read;
    /// a new identity is claimed and the old one released in the same
    /// transaction, and a new carrier checked when `check_carrier`.
    pub async fn update_client(
        &self,
        current: &ClientRecord,
        next: &ClientRecord,
        check_carrier: bool,
    ) -> Result<Result<(), ClientWriteError>, StoreError> {
        let mut items = vec![self.put_if_version(self.client_item(next)?, current.version)?];
        let rekeyed = current.unique_key != next.unique_key;
        if rekeyed {
            items.push(self.client_key_claim(next)?);
            items.push(self.release_client_key(current)?);
        }
        let carrier_changed = current.settings.carrier != next.settings.carrier;
        if check_carrier && carrier_changed {
            items.push(self.carrier_exists(next)?);
        }
        let result = if items.len() == 1 {
            self.write_all(items)
                .await?
                .map_err(|()| ClientWriteError::Changed)
        } else {
            self.transact_checked(items).await?.map_err(|failed| {
                match failed.iter().position(|f| *f) {
                    Some(1) => ClientWriteError::Taken,
                    Some(3) => ClientWriteError::NoCarrier,
                    _ => ClientWriteError::Changed,
                }
            })
        };
        Ok(result)
    }

    fn release_client_key(&self, client: &ClientRecord) -> Result<TransactWriteItem, StoreError> {
        self.release_claim(
            k::account_pk(&client.account_id),
            k::rpa_client_key_sk(&client.unique_key),
            "client_id",
            &client.id,
        )
    }

    /// Deletes a client and releases its identity. `false`: no such client.
    pub async fn delete_client(
        &self,
        account_id: &str,
        client_id: &str,
    ) -> Result<bool, StoreError> {
        let Some(client) = self.get_client(account_id, client_id).await? else {
            return Ok(false);
        };
        let items = vec![
            self.delete_item(
                k::account_pk(account_id),
                k::rpa_client_sk(client_id),
                "attribute_exists(pk)",
            )?,
            self.release_client_key(&client)?,
        ];
        Ok(self.transact_checked(items).await?.is_ok())
    }

    /// A page of an account's clients, oldest first; by carrier through
    /// gsi1, `active` and `cnpj` as filters (a page may then hold fewer
    /// than `limit` clients and still have a next one).
    pub async fn list_clients(
        &self,
        account_id: &str,
        filter: &ClientFilter,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<ClientRecord>, ListError> {
        let query = self.db.query().table_name(&self.table);
        let (mut query, index) = match &filter.carrier {
            Some(carrier) => (
                query
                    .key_condition_expression("gsi1pk = :p")
                    .expression_attribute_values(
                        ":p",
                        s(k::clients_of_carrier(account_id, carrier.as_str())),
                    ),
                Some(Index::Gsi1),
            ),
            None => (
                self.sk_prefix(k::account_pk(account_id), k::RPA_CLIENT_PREFIX),
                None,
            ),
        };
        let mut conditions = Vec::new();
        if let Some(active) = filter.active {
            conditions.push("#active = :active");
            query = query
                .expression_attribute_names("#active", "active")
                .expression_attribute_values(
                    ":active",
                    aws_sdk_dynamodb::types::AttributeValue::Bool(active),
                );
        }
        if let Some(cnpj) = &filter.cnpj {
            conditions.push("#cnpj = :cnpj");
            query = query
                .expression_attribute_names("#cnpj", "cnpj")
                .expression_attribute_values(":cnpj", s(cnpj));
        }
        if !conditions.is_empty() {
            query = query.filter_expression(conditions.join(" AND "));
        }
        self.page_of(query, index, limit, cursor).await
    }
}

impl Store {
    /// One page of the clients a schedule's run goes through: the active
    /// ones only with `active_only`, of `carrier` when given; the page's
    /// cursor is this store's own (an unreadable one is malformed data,
    /// not a client's mistake).
    pub async fn clients_page(
        &self,
        account_id: &str,
        carrier: Option<&CarrierCode>,
        active_only: bool,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<ClientRecord>, StoreError> {
        let filter = ClientFilter {
            carrier: carrier.cloned(),
            active: active_only.then_some(true),
            cnpj: None,
        };
        self.list_clients(account_id, &filter, limit, cursor)
            .await
            .map_err(ListError::into_store)
    }

    /// Every client of an account (only the active ones with
    /// `active_only`), of `carriers` when some are named (one query per
    /// carrier through gsi1, else the account's clients), up to `cap`.
    pub async fn all_clients(
        &self,
        account_id: &str,
        carriers: &[CarrierCode],
        active_only: bool,
        cap: usize,
    ) -> Result<Vec<ClientRecord>, StoreError> {
        let filters: Vec<Option<&CarrierCode>> = if carriers.is_empty() {
            vec![None]
        } else {
            carriers.iter().map(Some).collect()
        };
        let mut clients = Vec::new();
        for carrier in filters {
            let mut cursor: Option<String> = None;
            loop {
                let page = self
                    .clients_page(account_id, carrier, active_only, 100, cursor.as_deref())
                    .await?;
                clients.extend(page.items);
                if clients.len() >= cap {
                    clients.truncate(cap);
                    return Ok(clients);
                }
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        Ok(clients)
    }
}
