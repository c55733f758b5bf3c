//! Request and response messages of every API Sluice implements, one module per API.
//! Field names follow the Kafka message specs in snake_case so they can be checked against them.

mod api_versions;

pub use api_versions::*;

/// Round-trip checks shared by every message: for each supported version, a random value encodes,
/// decodes without leftovers, and encodes again to the same bytes. Fields outside a version are
/// dropped by the first encode, so the comparison is on bytes, not values.
#[cfg(test)]
pub(crate) fn check_round_trip<T>()
where
    T: crate::api::ApiMessage + crate::sample::Sample + std::fmt::Debug,
{
    use bytes::BytesMut;
    for version in T::MIN_VERSION..=T::MAX_VERSION {
        for seed in 0..300u64 {
            let mut rng = crate::sample::Rng::new(seed << 16 | version as u64);
            let value = T::sample(&mut rng);
            let mut first = BytesMut::new();
            value.encode_body(&mut first, version);
            let decoded = T::decode_body(first.clone().freeze(), version)
                .unwrap_or_else(|e| panic!("{} v{version} seed {seed}: {e}\n{value:?}", T::NAME));
            let mut second = BytesMut::new();
            decoded.encode_body(&mut second, version);
            assert_eq!(first, second, "{} v{version} seed {seed}", T::NAME);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_round_trip() {
        check_round_trip::<ApiVersionsRequest>();
        check_round_trip::<ApiVersionsResponse>();
    }

    #[test]
    fn api_versions_v3_request_golden() {
        // ApiVersions v3 body as librdkafka sends it: compact strings "librdkafka", "2.0.2",
        // then an empty tagged-field section.
        let body = bytes::Bytes::from_static(b"\x0blibrdkafka\x062.0.2\x00");
        let req = <ApiVersionsRequest as crate::api::ApiMessage>::decode_body(body, 3).unwrap();
        assert_eq!(req.client_software_name, "librdkafka");
        assert_eq!(req.client_software_version, "2.0.2");
    }
}
