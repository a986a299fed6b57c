//! The forms table (`subjectId`, `formOid`): a form's data as the JSON of its wire shape, its
//! `version` (the `ETag`), who wrote it last and when. A write is conditional on the version it
//! read (none stored for the first) and carries its audit entries in the same transaction.

use super::clinical::Forms;
use super::dynamodb::{get_n, get_s, get_time, n, s, time, transact, Item};
use super::{audit, sdk_failure, AuditEntry, StoreError};
use crate::clinical::forms::{Form, FormData, FormOid};
use crate::domain::SubjectId;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use chrono::NaiveDate;
use std::collections::HashMap;

/// A transaction holds at most 100 writes: the form and 99 audit entries.
pub const MAX_AUDIT_ENTRIES: usize = 99;

#[derive(Clone, Debug)]
pub struct DynamoForms {
    client: Client,
    table: String,
    audit_table: String,
}

impl DynamoForms {
    pub fn new(client: Client, table: impl Into<String>, audit_table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            audit_table: audit_table.into(),
        }
    }
}

fn form_to_item(f: &Form) -> Item {
    HashMap::from([
        ("subjectId".into(), s(f.subject.as_str())),
        ("formOid".into(), s(f.oid().as_str())),
        ("data".into(), s(f.data.to_json().to_string())),
        ("version".into(), n(f.version)),
        ("updatedAt".into(), time(&f.updated_at)),
        ("updatedBy".into(), s(&f.updated_by)),
    ])
}

pub(crate) fn form_from_item(item: &Item) -> Result<Form, StoreError> {
    let oid = get_s(item, "formOid")?;
    let form =
        FormOid::parse(oid).ok_or_else(|| StoreError::Corrupt(format!("unknown form {oid}")))?;
    let raw: serde_json::Value = serde_json::from_str(get_s(item, "data")?)
        .map_err(|e| StoreError::Corrupt(format!("attribute data: {e}")))?;
    // Stored data was checked when written; its dates are not re-judged against today.
    let data = FormData::parse(form, &raw, NaiveDate::MAX).map_err(|errors| {
        StoreError::Corrupt(format!("form data: {} invalid fields", errors.len()))
    })?;
    Ok(Form {
        subject: SubjectId::parse(get_s(item, "subjectId")?)
            .map_err(|e| StoreError::Corrupt(format!("attribute subjectId: {e}")))?,
        data,
        version: get_n(item, "version")?,
        updated_at: get_time(item, "updatedAt")?,
        updated_by: get_s(item, "updatedBy")?.to_owned(),
    })
}

#[async_trait]
impl Forms for DynamoForms {
    #[tracing::instrument(name = "forms.get", skip_all, fields(form = form.as_str()))]
    async fn get(&self, subject: &SubjectId, form: FormOid) -> Result<Option<Form>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("subjectId", s(subject.as_str()))
            .key("formOid", s(form.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_failure("GetItem forms", e))?;
        out.item.as_ref().map(form_from_item).transpose()
    }

    #[tracing::instrument(name = "forms.of_subject", skip_all)]
    async fn of_subject(&self, subject: &SubjectId) -> Result<Vec<Form>, StoreError> {
        // One item per form OID, but a Query page stops at 1 MB and four forms near their repeat
        // limits can pass it: read every page, or a form would silently be missing.
        let mut forms = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("subjectId = :s")
                .expression_attribute_values(":s", s(subject.as_str()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_failure("Query forms", e))?;
            for item in out.items.unwrap_or_default() {
                forms.push(form_from_item(&item)?);
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(forms),
            }
        }
    }

    #[tracing::instrument(name = "forms.put", skip_all, fields(form = form.oid().as_str(), version = form.version))]
    async fn put(&self, form: &Form, audit: &[AuditEntry]) -> Result<(), StoreError> {
        if form.version == 0 {
            return Err(StoreError::Failed("a form's first version is 1".into()));
        }
        if audit.is_empty() || audit.len() > MAX_AUDIT_ENTRIES {
            return Err(StoreError::Failed(format!(
                "a form write carries 1 to {MAX_AUDIT_ENTRIES} audit entries, not {}",
                audit.len()
            )));
        }
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(form_to_item(form)));
        put = if form.version == 1 {
            put.condition_expression("attribute_not_exists(subjectId)")
        } else {
            put.condition_expression("version = :read")
                .expression_attribute_values(":read", n(form.version - 1))
        };
        let put = put
            .build()
            .map_err(|e| StoreError::Failed(format!("form item: {e}")))?;
        let mut items = vec![TransactWriteItem::builder().put(put).build()];
        for entry in audit {
            items.push(audit::put(&self.audit_table, entry)?);
        }
        if transact(&self.client, "TransactWriteItems form", items).await? {
            Ok(())
        } else {
            Err(StoreError::Conflict(format!(
                "form is no longer at version {}",
                form.version - 1
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;

    #[test]
    fn form_items_round_trip() {
        let data = FormData::parse(
            FormOid::VitalSigns,
            &json!({"itemGroups": [{"itemGroupOid": "IG.VS", "repeatKey": 1,
                "items": {"VSDAT": "2026-11-01", "SYSBP": 128, "DIABP": 82, "TEMP": 36.8}}]}),
            NaiveDate::from_ymd_opt(2026, 11, 28).unwrap(),
        )
        .unwrap();
        let form = Form {
            subject: SubjectId::parse("SUBJ-1").unwrap(),
            data,
            version: 3,
            updated_at: chrono::DateTime::from_timestamp_millis(Utc::now().timestamp_millis())
                .unwrap(),
            updated_by: "u".into(),
        };
        assert_eq!(form_from_item(&form_to_item(&form)).unwrap(), form);
    }
}
