//! Stripe list pages: the query for the next page, reading a page, and
//! completing an embedded child list that stopped at `has_more`.

use serde_json::Value;

/// Stripe's largest page.
pub const PAGE_SIZE: u32 = 100;

/// Query parameters of one list request.
pub fn list_query(
    extra: &[(&str, &str)],
    starting_after: Option<&str>,
    created_gte: Option<i64>,
) -> Vec<(String, String)> {
    let mut q = vec![("limit".to_owned(), PAGE_SIZE.to_string())];
    q.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    if let Some(id) = starting_after {
        q.push(("starting_after".into(), id.into()));
    }
    if let Some(t) = created_gte {
        q.push(("created[gte]".into(), t.to_string()));
    }
    q
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub data: Vec<Value>,
    pub has_more: bool,
}

impl Page {
    /// The cursor for the next page: the last object's id.
    pub fn last_id(&self) -> Option<&str> {
        self.data.last().and_then(|o| o.get("id")).and_then(Value::as_str)
    }

    /// The newest `created` on the page.
    pub fn max_created(&self) -> Option<i64> {
        self.data.iter().filter_map(|o| o.get("created").and_then(Value::as_i64)).max()
    }
}

/// Reads `{"object": "list", "data": [...], "has_more": bool}`.
pub fn parse_page(body: &str) -> Result<Page, String> {
    let v: Value = serde_json::from_str(body).map_err(|e| format!("list page is not JSON: {e}"))?;
    page_of(v)
}

/// A list page already parsed, taken apart without copying its objects.
pub fn page_of(mut v: Value) -> Result<Page, String> {
    let data = match v.get_mut("data").map(Value::take) {
        Some(Value::Array(items)) => items,
        _ => return Err("list page has no \"data\" array".into()),
    };
    let has_more = v.get("has_more").and_then(Value::as_bool).unwrap_or(false);
    if has_more && data.is_empty() {
        return Err("list page says has_more but is empty".into());
    }
    Ok(Page { data, has_more })
}

/// Whether `object`'s embedded list `field` stopped short (`has_more: true`).
pub fn list_is_partial(object: &Value, field: &str) -> bool {
    object.get(field).and_then(|l| l.get("has_more")).and_then(Value::as_bool).unwrap_or(false)
}

/// Appends `rest` (the items fetched after the embedded ones) to `object`'s
/// list `field`, skipping ids already there, and marks the list complete.
pub fn complete_list(object: &mut Value, field: &str, rest: Vec<Value>) {
    let Some(list) = object.get_mut(field).and_then(Value::as_object_mut) else { return };
    let mut items = match list.remove("data") {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    let known: std::collections::HashSet<String> = items
        .iter()
        .filter_map(|i| i.get("id").and_then(Value::as_str).map(str::to_owned))
        .collect();
    items.extend(
        rest.into_iter()
            .filter(|i| i.get("id").and_then(Value::as_str).is_none_or(|id| !known.contains(id))),
    );
    list.insert("total_count".into(), Value::from(items.len()));
    list.insert("data".into(), Value::Array(items));
    list.insert("has_more".into(), Value::Bool(false));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn list_query_has_limit_filters_and_cursor() {
        let q = list_query(&[("status", "all")], Some("sub_9"), Some(1_700_000_000));
        let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            q,
            vec![
                ("limit", "100"),
                ("status", "all"),
                ("starting_after", "sub_9"),
                ("created[gte]", "1700000000")
            ]
        );
        assert_eq!(list_query(&[], None, None).len(), 1);
    }

    #[test]
    fn pages_are_read_and_give_their_cursor() {
        let p = parse_page(r#"{"object":"list","data":[{"id":"cus_1","created":5},{"id":"cus_2","created":9}],"has_more":true}"#)
            .unwrap();
        assert_eq!(p.last_id(), Some("cus_2"));
        assert_eq!(p.max_created(), Some(9));
        assert!(p.has_more);
        let empty = parse_page(r#"{"data":[],"has_more":false}"#).unwrap();
        assert_eq!(empty.last_id(), None);
        assert!(parse_page("{}").is_err());
        assert!(parse_page("nope").is_err());
        assert!(parse_page(r#"{"data":[],"has_more":true}"#).is_err(), "an endless empty page");
    }

    #[test]
    fn partial_child_lists_are_completed_without_duplicates() {
        let mut sub = json!({"id": "sub_1", "items": {"object": "list", "has_more": true, "total_count": 2,
                             "data": [{"id": "si_1"}, {"id": "si_2"}]}});
        assert!(list_is_partial(&sub, "items"));
        complete_list(
            &mut sub,
            "items",
            vec![json!({"id": "si_2"}), json!({"id": "si_3"}), json!({"id": "si_4"})],
        );
        assert!(!list_is_partial(&sub, "items"));
        let ids: Vec<&str> = sub["items"]["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, vec!["si_1", "si_2", "si_3", "si_4"]);
        assert_eq!(sub["items"]["total_count"], 4);
        let mut no_list = json!({"id": "sub_2"});
        complete_list(&mut no_list, "items", vec![json!({"id": "si_9"})]);
        assert_eq!(no_list, json!({"id": "sub_2"}));
    }
}
