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

/// A list page kept as the JSON text it came as, to be handed whole to the
/// database, with what paging needs read from it by one pass that builds no
/// tree (the objects themselves are skipped over, not copied).
#[derive(Debug, Clone, PartialEq)]
pub struct RawPage {
    pub body: String,
    pub has_more: bool,
    pub items: Vec<ItemInfo>,
}

/// What paging needs of one object on a page.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ItemInfo {
    pub id: Option<String>,
    pub object: Option<String>,
    pub created: Option<i64>,
    /// The embedded child lists (`lines`, `items`, ...) that say `has_more: true`.
    pub partial_lists: Vec<&'static str>,
}

impl RawPage {
    /// The cursor for the next page: the last object's id.
    pub fn last_id(&self) -> Option<&str> {
        self.items.last().and_then(|i| i.id.as_deref())
    }

    /// The newest `created` on the page.
    pub fn max_created(&self) -> Option<i64> {
        self.items.iter().filter_map(|i| i.created).max()
    }

    /// The oldest `created` on the page.
    pub fn min_created(&self) -> Option<i64> {
        self.items.iter().filter_map(|i| i.created).min()
    }

    /// The distinct `object` values on the page.
    pub fn object_types(&self) -> Vec<&str> {
        let mut types: Vec<&str> = self.items.iter().filter_map(|i| i.object.as_deref()).collect();
        types.sort_unstable();
        types.dedup();
        types
    }

    /// Whether an object has a mirrored child list that stopped short: such a
    /// page has to be completed (and so parsed into a tree) before it is applied.
    pub fn has_partial_children(&self) -> bool {
        self.items.iter().any(|i| {
            let spec = i.object.as_deref().and_then(crate::mapping::spec_for);
            spec.is_some_and(|s| s.children.iter().any(|c| i.partial_lists.contains(&c.list)))
        })
    }
}

/// Reads a list page without building its objects: the same checks as
/// [`parse_page`], and the text is kept.
pub fn scan_page(body: String) -> Result<RawPage, String> {
    #[derive(serde::Deserialize)]
    struct Scan {
        data: Option<Vec<ItemInfo>>,
        #[serde(default)]
        has_more: Option<serde_json::Value>,
    }
    let scan: Scan =
        serde_json::from_str(&body).map_err(|e| format!("list page is not JSON: {e}"))?;
    let Some(items) = scan.data else { return Err("list page has no \"data\" array".into()) };
    // As parse_page: anything but `true` is no more.
    let has_more = scan.has_more.and_then(|v| v.as_bool()).unwrap_or(false);
    if has_more && items.is_empty() {
        return Err("list page says has_more but is empty".into());
    }
    Ok(RawPage { body, has_more, items })
}

mod scan {
    //! Deserializers that read an object's id, type, creation time and the
    //! `has_more` of its child lists, and skip everything else.
    use super::ItemInfo;
    use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::fmt;

    enum Key {
        Id,
        Object,
        Created,
        List(&'static str),
        Other,
    }

    impl<'de> Deserialize<'de> for Key {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Key;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a field name")
                }
                fn visit_str<E: de::Error>(self, k: &str) -> Result<Key, E> {
                    Ok(match k {
                        "id" => Key::Id,
                        "object" => Key::Object,
                        "created" => Key::Created,
                        _ => crate::mapping::SPECS
                            .iter()
                            .flat_map(|s| s.children)
                            .find(|c| c.list == k)
                            .map_or(Key::Other, |c| Key::List(c.list)),
                    })
                }
            }
            d.deserialize_str(V)
        }
    }

    /// `has_more` of an embedded list; anything that is not an object is no list.
    struct ListMore(bool);

    impl<'de> Deserialize<'de> for ListMore {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = ListMore;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a list object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<ListMore, A::Error> {
                    let mut more = false;
                    while let Some(k) = m.next_key::<String>()? {
                        if k == "has_more" {
                            // Any value is read whole (a wrong type must not stop the scan).
                            more = m.next_value::<serde_json::Value>()?.as_bool().unwrap_or(false);
                        } else {
                            m.next_value::<IgnoredAny>()?;
                        }
                    }
                    Ok(ListMore(more))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<ListMore, A::Error> {
                    while s.next_element::<IgnoredAny>()?.is_some() {}
                    Ok(ListMore(false))
                }
                fn visit_unit<E: de::Error>(self) -> Result<ListMore, E> {
                    Ok(ListMore(false))
                }
                fn visit_bool<E: de::Error>(self, _: bool) -> Result<ListMore, E> {
                    Ok(ListMore(false))
                }
                fn visit_i64<E: de::Error>(self, _: i64) -> Result<ListMore, E> {
                    Ok(ListMore(false))
                }
                fn visit_u64<E: de::Error>(self, _: u64) -> Result<ListMore, E> {
                    Ok(ListMore(false))
                }
                fn visit_f64<E: de::Error>(self, _: f64) -> Result<ListMore, E> {
                    Ok(ListMore(false))
                }
                fn visit_str<E: de::Error>(self, _: &str) -> Result<ListMore, E> {
                    Ok(ListMore(false))
                }
            }
            d.deserialize_any(V)
        }
    }

    impl<'de> Deserialize<'de> for ItemInfo {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = ItemInfo;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a Stripe object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<ItemInfo, A::Error> {
                    let mut item = ItemInfo::default();
                    while let Some(key) = m.next_key::<Key>()? {
                        match key {
                            Key::Id => {
                                item.id =
                                    m.next_value::<serde_json::Value>()?.as_str().map(str::to_owned)
                            }
                            Key::Object => {
                                item.object =
                                    m.next_value::<serde_json::Value>()?.as_str().map(str::to_owned)
                            }
                            Key::Created => {
                                item.created = m.next_value::<serde_json::Value>()?.as_i64()
                            }
                            Key::List(name) => {
                                item.partial_lists.retain(|l| *l != name);
                                if m.next_value::<ListMore>()?.0 {
                                    item.partial_lists.push(name);
                                }
                            }
                            Key::Other => {
                                m.next_value::<IgnoredAny>()?;
                            }
                        }
                    }
                    Ok(item)
                }
            }
            d.deserialize_map(V)
        }
    }
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
    fn a_scanned_page_reads_like_a_parsed_one_and_keeps_its_text() {
        let body = r#"{"object":"list","url":"/v1/invoices","has_more":true,"data":[
            {"id":"in_1","object":"invoice","created":5,"lines":{"object":"list","has_more":false,"data":[{"id":"il_1","created":99}]}},
            {"object":"invoice","lines":{"data":[],"has_more":true},"id":"in_2","created":9,"metadata":{"id":"x","created":100}}]}"#;
        let raw = scan_page(body.to_owned()).unwrap();
        let parsed = parse_page(body).unwrap();
        assert_eq!(raw.body, body);
        assert_eq!(raw.has_more, parsed.has_more);
        assert_eq!(raw.last_id(), parsed.last_id());
        assert_eq!(raw.max_created(), parsed.max_created());
        assert_eq!(
            raw.min_created(),
            parsed.data.iter().filter_map(|o| o["created"].as_i64()).min()
        );
        let ids: Vec<_> = raw.items.iter().map(|i| i.id.as_deref()).collect();
        assert_eq!(ids, vec![Some("in_1"), Some("in_2")]);
        assert_eq!(raw.object_types(), vec!["invoice"]);
        assert_eq!(raw.items[1].partial_lists, vec!["lines"]);
        assert!(raw.has_partial_children());
        for bad in ["{}", "nope", r#"{"data":[],"has_more":true}"#, r#"{"data":{}}"#] {
            assert!(parse_page(bad).is_err(), "{bad}");
            assert!(scan_page(bad.into()).unwrap_err().starts_with("list page "), "{bad}");
        }
    }

    #[test]
    fn only_a_mirrored_child_list_that_stopped_short_needs_completing() {
        let page =
            |items: &str| scan_page(format!(r#"{{"data":[{items}],"has_more":false}}"#)).unwrap();
        // a customer has no child lists, whatever its fields are called
        assert!(
            !page(r#"{"id":"cus_1","object":"customer","lines":{"has_more":true}}"#)
                .has_partial_children()
        );
        // an invoice's lines complete, or absent, or not a list
        assert!(
            !page(r#"{"id":"in_1","object":"invoice","lines":{"has_more":false,"data":[]}}"#)
                .has_partial_children()
        );
        assert!(!page(r#"{"id":"in_1","object":"invoice","lines":null}"#).has_partial_children());
        assert!(
            !page(r#"{"id":"in_1","object":"invoice","lines":"x","items":[1,{"a":2}]}"#)
                .has_partial_children()
        );
        // a has_more of the wrong type is no more, and the fields after it are still read
        let odd = page(
            r#"{"id":"in_1","lines":{"has_more":"yes","data":[]},"object":"invoice","created":3}"#,
        );
        assert!(!odd.has_partial_children());
        assert_eq!(
            (odd.items[0].object.as_deref(), odd.items[0].created),
            (Some("invoice"), Some(3))
        );
        let top = r#"{"data":[{"id":"cus_1"}],"has_more":"maybe"}"#;
        assert_eq!(scan_page(top.into()).unwrap().has_more, parse_page(top).unwrap().has_more);
        // a subscription's items with more to fetch
        let p = page(
            r#"{"id":"sub_1","object":"subscription","items":{"has_more":true,"data":[{"id":"si_1"}]}}"#,
        );
        assert!(p.has_partial_children());
        // ids that are not strings are no ids
        assert_eq!(
            page(r#"{"id":7,"object":"customer","created":"soon"}"#).items[0],
            ItemInfo { object: Some("customer".into()), ..ItemInfo::default() }
        );
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
