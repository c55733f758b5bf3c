//! Joins through `TopologyTestDriver`: stream-table (inner and left) enriching records with the
//! table's latest value, table-table joins updating from both sides, and co-partition groups.

use sluice_streams::serdes::{LongSerde, StringSerde};
use sluice_streams::{
    Consumed, Grouped, KStream, KTable, Materialized, Produced, StreamsBuilder, TopologyTestDriver,
};

fn s(v: &str) -> String {
    v.to_string()
}

type Clicks = KStream<String, String>;
type Users = KTable<String, String>;

fn clicks_and_users(b: &StreamsBuilder) -> (Clicks, Users) {
    let clicks = b.stream::<String, String>("clicks", Consumed::with(StringSerde, StringSerde));
    let users = b.table::<String, String>(
        "users",
        Consumed::with(StringSerde, StringSerde),
        Materialized::as_store("users-store"),
    );
    (clicks, users)
}

fn user(d: &TopologyTestDriver, name: &str, region: Option<&str>, ts: i64) {
    d.create_input_topic::<String, Option<String>>("users", StringSerde, StringSerde)
        .pipe_input(s(name), region.map(s), ts)
        .unwrap();
}

fn click(d: &TopologyTestDriver, name: &str, page: &str, ts: i64) {
    d.create_input_topic::<String, String>("clicks", StringSerde, StringSerde)
        .pipe_input(s(name), s(page), ts)
        .unwrap();
}

fn out(d: &TopologyTestDriver) -> Vec<(String, String)> {
    d.create_output_topic::<String, String>("out", StringSerde, StringSerde)
        .read_key_values_to_list()
        .unwrap()
}

#[test]
fn stream_table_join_enriches_records_with_the_latest_table_value() {
    let b = StreamsBuilder::new();
    let (clicks, users) = clicks_and_users(&b);
    clicks
        .join(&users, |page: String, region: String| {
            format!("{page}@{region}")
        })
        .to("out", Produced::with(StringSerde, StringSerde));
    let d = TopologyTestDriver::new(b.build().unwrap(), "join").unwrap();

    click(&d, "alice", "home", 1);
    assert!(
        out(&d).is_empty(),
        "no table row yet: an inner join drops the click"
    );
    user(&d, "alice", Some("eu"), 2);
    click(&d, "alice", "p1", 3);
    click(&d, "bob", "p2", 4);
    user(&d, "alice", Some("us"), 5);
    click(&d, "alice", "p3", 6);
    assert_eq!(
        out(&d),
        vec![(s("alice"), s("p1@eu")), (s("alice"), s("p3@us"))]
    );
    // A deleted row joins no more.
    user(&d, "alice", None, 7);
    click(&d, "alice", "p4", 8);
    assert!(out(&d).is_empty());
    // Table updates alone produce nothing on the joined stream.
    user(&d, "bob", Some("apac"), 9);
    assert!(out(&d).is_empty());
}

#[test]
fn stream_table_left_join_keeps_records_without_a_table_row() {
    let b = StreamsBuilder::new();
    let (clicks, users) = clicks_and_users(&b);
    clicks
        .left_join(&users, |page: String, region: Option<String>| {
            format!("{page}@{}", region.as_deref().unwrap_or("unknown"))
        })
        .to("out", Produced::with(StringSerde, StringSerde));
    let d = TopologyTestDriver::new(b.build().unwrap(), "join").unwrap();
    click(&d, "bob", "p1", 1);
    user(&d, "bob", Some("eu"), 2);
    click(&d, "bob", "p2", 3);
    let recs = d
        .create_output_topic::<String, String>("out", StringSerde, StringSerde)
        .read_records_to_list()
        .unwrap();
    let got: Vec<(String, i64)> = recs.into_iter().map(|r| (r.value, r.timestamp)).collect();
    assert_eq!(got, vec![(s("p1@unknown"), 1), (s("p2@eu"), 3)]);
}

#[test]
fn the_join_runs_in_the_tables_subtopology_and_records_its_copartition_group() {
    let b = StreamsBuilder::new();
    let (clicks, users) = clicks_and_users(&b);
    clicks
        .join(&users, |p: String, r: String| p + &r)
        .to("out", Produced::with(StringSerde, StringSerde));
    let t = b.build().unwrap();
    assert_eq!(t.subtopologies().len(), 1, "{}", t.describe());
    assert_eq!(
        t.copartition_groups("app"),
        vec![vec![s("clicks"), s("users")]]
    );
    let parts = |clicks: i32| move |topic: &str| Some(if topic == "clicks" { clicks } else { 4 });
    assert!(t.check_copartitioning("app", parts(4)).is_ok());
    let e = t
        .check_copartitioning("app", parts(3))
        .unwrap_err()
        .to_string();
    assert!(e.contains("clicks: 3") && e.contains("users: 4"), "{e}");
}

#[test]
fn a_stream_whose_key_changed_is_repartitioned_before_the_join() {
    let b = StreamsBuilder::new();
    let (clicks, users) = clicks_and_users(&b);
    // Clicks keyed by session, the value is the user: rekey by user before joining. The
    // repartition topic takes the key serde from the table and the value serde from the stream.
    clicks
        .select_key(|_session: &String, user: &String| user.clone())
        .join(&users, |user: String, region: String| {
            format!("{user}@{region}")
        })
        .to("out", Produced::with(StringSerde, StringSerde));
    let t = b.build().unwrap();
    assert_eq!(t.subtopologies().len(), 2, "{}", t.describe());
    let groups = t.copartition_groups("app");
    assert_eq!(groups.len(), 1);
    assert!(groups[0].contains(&s("users")));
    assert!(
        groups[0]
            .iter()
            .any(|g| g.starts_with("app-KSTREAM-JOIN") && g.ends_with("-left-repartition")),
        "{groups:?}"
    );
    let d = TopologyTestDriver::new(t, "app").unwrap();
    user(&d, "carol", Some("eu"), 1);
    click(&d, "s1", "dave", 2);
    click(&d, "s2", "carol", 3);
    assert_eq!(out(&d), vec![(s("carol"), s("carol@eu"))]);
}

#[test]
fn a_join_with_an_unmaterialized_table_fails_the_build() {
    let b = StreamsBuilder::new();
    let (clicks, users) = clicks_and_users(&b);
    let filtered = users.filter(|_, r| r != "none");
    clicks.join(&filtered, |p: String, r: String| p + &r);
    let e = b.build().err().expect("build fails").to_string();
    assert!(e.contains("materialized"), "{e}");
}

/// Users (name -> region) joined with accounts (name -> plan), to "out" as `Option`s.
fn table_table(left: bool) -> TopologyTestDriver {
    let b = StreamsBuilder::new();
    let (_, users) = clicks_and_users(&b);
    let plans = b.table::<String, String>(
        "plans",
        Consumed::with(StringSerde, StringSerde),
        Materialized::as_store("plans-store"),
    );
    let joined = if left {
        users.left_join(&plans, |r: &String, p: Option<&String>| {
            format!("{r}/{}", p.map_or("-", String::as_str))
        })
    } else {
        users.join(&plans, |r: &String, p: &String| format!("{r}/{p}"))
    };
    joined
        .to_stream()
        .to("out", Produced::with(StringSerde, StringSerde));
    let t = b.build().unwrap();
    assert_eq!(
        t.copartition_groups("tt"),
        vec![vec![s("plans"), s("users")]]
    );
    TopologyTestDriver::new(t, "tt").unwrap()
}

fn plan(d: &TopologyTestDriver, name: &str, p: Option<&str>, ts: i64) {
    d.create_input_topic::<String, Option<String>>("plans", StringSerde, StringSerde)
        .pipe_input(s(name), p.map(s), ts)
        .unwrap();
}

fn table_out(d: &TopologyTestDriver) -> Vec<(String, Option<String>, i64)> {
    d.create_output_topic::<String, Option<String>>("out", StringSerde, StringSerde)
        .read_records_to_list()
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp))
        .collect()
}

#[test]
fn table_table_join_updates_when_either_side_changes() {
    let d = table_table(false);
    user(&d, "a", Some("eu"), 1);
    assert!(table_out(&d).is_empty());
    plan(&d, "a", Some("free"), 2);
    user(&d, "a", Some("us"), 3);
    plan(&d, "a", Some("pro"), 4);
    // A right-side update with the older timestamp keeps the left row's newer one.
    user(&d, "a", Some("ca"), 10);
    plan(&d, "a", Some("team"), 5);
    plan(&d, "a", None, 11);
    user(&d, "a", Some("mx"), 12);
    assert_eq!(
        table_out(&d),
        vec![
            (s("a"), Some(s("eu/free")), 2),
            (s("a"), Some(s("us/free")), 3),
            (s("a"), Some(s("us/pro")), 4),
            (s("a"), Some(s("ca/pro")), 10),
            (s("a"), Some(s("ca/team")), 10),
            (s("a"), None, 11),
        ]
    );
}

#[test]
fn table_table_left_join_has_a_row_for_each_left_key() {
    let d = table_table(true);
    user(&d, "a", Some("eu"), 1);
    plan(&d, "b", Some("free"), 2);
    plan(&d, "a", Some("pro"), 3);
    plan(&d, "a", None, 4);
    user(&d, "a", None, 5);
    assert_eq!(
        table_out(&d),
        vec![
            (s("a"), Some(s("eu/-")), 1),
            (s("a"), Some(s("eu/pro")), 3),
            (s("a"), Some(s("eu/-")), 4),
            (s("a"), None, 5),
        ]
    );
}

#[test]
fn a_stream_joins_an_aggregated_table() {
    // Purchases enriched with the running count of the user's purchases so far.
    let b = StreamsBuilder::new();
    let purchases =
        b.stream::<String, String>("purchases", Consumed::with(StringSerde, StringSerde));
    let counts = purchases
        .group_by_key(Grouped::new())
        .count(Materialized::as_store("purchase-counts"));
    purchases
        .join(&counts, |item: String, n: i64| format!("{item}#{n}"))
        .to("out", Produced::with(StringSerde, StringSerde));
    let d = TopologyTestDriver::new(b.build().unwrap(), "agg-join").unwrap();
    let input = d.create_input_topic::<String, String>("purchases", StringSerde, StringSerde);
    input.pipe_input(s("u"), s("x"), 1).unwrap();
    input.pipe_input(s("u"), s("y"), 2).unwrap();
    // The count node runs before the join node (created first), so each purchase sees itself.
    assert_eq!(out(&d), vec![(s("u"), s("x#1")), (s("u"), s("y#2"))]);
    let store = d.key_value_store::<String, i64>("purchase-counts", StringSerde, LongSerde);
    assert_eq!(store.get(&s("u")).unwrap(), Some(2));
}
