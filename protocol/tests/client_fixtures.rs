//! Golden bytes from real clients: every captured request (see fixtures/README.md) decodes
//! with nothing left over and encodes back to exactly the bytes the client sent.

use std::path::Path;

mod common;

use bytes::Bytes;
use sluice_protocol::api::{request_header_version, support_for};
use sluice_protocol::header::RequestHeader;

#[test]
fn captured_client_requests_decode_and_encode_byte_for_byte() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut checked = 0;
    let mut clients = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().map_or(true, |e| e != "bin") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let frame = Bytes::from(std::fs::read(&path).unwrap());
        let (api_key, version, _) = RequestHeader::peek(&frame).unwrap();
        let support = support_for(api_key).unwrap_or_else(|| panic!("{name}: unknown api"));
        if !(support.min..=support.max).contains(&version) {
            // Only ApiVersions may arrive at a version we do not offer (a newer client probing).
            assert_eq!(
                api_key, 18,
                "{name}: unsupported version of a non-ApiVersions request"
            );
            continue;
        }
        let mut rest = frame.clone();
        let header = RequestHeader::decode(&mut rest, request_header_version(api_key, version))
            .unwrap_or_else(|e| panic!("{name}: header: {e}"));
        assert!(
            header.client_id.is_some(),
            "{name}: real clients send a client id"
        );
        let header_len = frame.len() - rest.len();
        let body = common::reencode_request(api_key, version, rest)
            .expect("a request type for every supported api")
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            &body[..],
            &frame[header_len..],
            "{name}: re-encoded body differs"
        );
        clients.insert(name.rsplitn(3, '-').nth(2).unwrap().to_string());
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} fixtures found");
    assert_eq!(
        clients.len(),
        3,
        "fixtures from kcat, librdkafka and kafka-python: {clients:?}"
    );
}
