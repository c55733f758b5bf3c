//! `wire_struct!`: the compact declarative description of a message or nested struct.
//! Each field names its type, the versions it exists in and, for tagged fields, its tag; the
//! macro derives encode, decode, `Default` and a random sampler for round-trip tests from that.
//!
//! ```ignore
//! wire_struct! {
//!     pub struct MetadataRequest {
//!         topics: Option<Vec<MetadataRequestTopic>> => 0..;
//!         allow_auto_topic_creation: bool => 4.., default true;
//!         cluster_id: Option<String> => 12.., tag 0;
//!     }
//! }
//! ```
//! Version ranges are inclusive: `4..` is v4 and later, `0..5` is v0 through v5.
//! A field outside its version range is neither written nor read (it keeps its default); a
//! tagged field is written only in flexible versions and only when it differs from its default.
//! `nullable 7..` marks an `Option` field that exists earlier but may only be null from v7 on
//! (the spec's `nullableVersions`): in older versions `None` is written as the empty value, which
//! is what Kafka itself sends, and a null read there is an error.

#[macro_export]
#[doc(hidden)]
macro_rules! __wire_default {
    () => {
        ::core::default::Default::default()
    };
    ($e:expr) => {
        $e
    };
}

#[macro_export]
macro_rules! wire_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                $field:ident : $ty:ty => $min:literal .. $($max:literal)?
                    $(, nullable $nmin:literal ..)? $(, tag $tag:literal)? $(, default $def:expr)? ;
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl ::core::default::Default for $name {
            fn default() -> Self {
                $name { $( $field: $crate::__wire_default!($($def)?), )* }
            }
        }

        impl $crate::wire::Wire for $name {
            #[allow(unused_variables, unused_mut)]
            fn encode(&self, buf: &mut ::bytes::BytesMut, cx: $crate::wire::Ctx) {
                let mut tagged: ::std::vec::Vec<(u32, ::bytes::BytesMut)> = ::std::vec::Vec::new();
                $(
                    let max: i16 = i16::MAX $(.min($max))?;
                    let tag: Option<u32> = None $(.or(Some($tag)))?;
                    if cx.version >= $min && cx.version <= max {
                        match tag {
                            None => $(
                                if cx.version < $nmin {
                                    $crate::wire::Nullable::encode_not_null(&self.$field, buf, cx)
                                } else
                            )? {
                                $crate::wire::Wire::encode(&self.$field, buf, cx)
                            }
                            Some(t) => {
                                let default: $ty = $crate::__wire_default!($($def)?);
                                if cx.flexible && self.$field != default {
                                    let mut data = ::bytes::BytesMut::new();
                                    $crate::wire::Wire::encode(&self.$field, &mut data, cx);
                                    tagged.push((t, data));
                                }
                            }
                        }
                    }
                )*
                if cx.flexible {
                    $crate::wire::put_tagged_fields(buf, &tagged);
                }
            }

            #[allow(unused_variables, unused_mut)]
            fn decode(buf: &mut ::bytes::Bytes, cx: $crate::wire::Ctx) -> $crate::error::Result<Self> {
                let mut this = <Self as ::core::default::Default>::default();
                $(
                    let max: i16 = i16::MAX $(.min($max))?;
                    let tag: Option<u32> = None $(.or(Some($tag)))?;
                    if tag.is_none() && cx.version >= $min && cx.version <= max {
                        this.$field = <$ty as $crate::wire::Wire>::decode(buf, cx)?;
                        $(
                            if cx.version < $nmin && $crate::wire::Nullable::is_null(&this.$field) {
                                return Err($crate::error::ProtocolError::UnexpectedNull);
                            }
                        )?
                    }
                )*
                if cx.flexible {
                    $crate::wire::get_tagged_fields(buf, |t, mut data| {
                        $(
                            let max: i16 = i16::MAX $(.min($max))?;
                            let tag: Option<u32> = None $(.or(Some($tag)))?;
                            if tag == Some(t) && cx.version >= $min && cx.version <= max {
                                this.$field = <$ty as $crate::wire::Wire>::decode(&mut data, cx)?;
                                return Ok(());
                            }
                        )*
                        Ok(())
                    })?;
                }
                Ok(this)
            }
        }

        #[cfg(test)]
        impl $crate::sample::Sample for $name {
            fn sample(rng: &mut $crate::sample::Rng) -> Self {
                $name { $( $field: <$ty as $crate::sample::Sample>::sample(rng), )* }
            }
        }
    };
}

/// Declares an API: its key, the versions Sluice implements, the first flexible version (or
/// `none`, as the spec's `"flexibleVersions": "none"`, for an API that never became flexible),
/// and the request and response types. Implements [`crate::api::ApiMessage`] for both.
#[macro_export]
macro_rules! api {
    ($key:literal, $api_name:literal, $min:literal ..= $max:literal, flexible none, $req:ident, $resp:ident) => {
        $crate::api!(@impl $key, $api_name, $min, $max, i16::MAX, $req, $resp);
    };
    ($key:literal, $api_name:literal, $min:literal ..= $max:literal, flexible $flex:literal, $req:ident, $resp:ident) => {
        $crate::api!(@impl $key, $api_name, $min, $max, $flex, $req, $resp);
    };
    (@impl $key:literal, $api_name:literal, $min:literal, $max:literal, $flex:expr, $req:ident, $resp:ident) => {
        impl $crate::api::ApiMessage for $req {
            const API_KEY: i16 = $key;
            const NAME: &'static str = $api_name;
            const MIN_VERSION: i16 = $min;
            const MAX_VERSION: i16 = $max;
            const FIRST_FLEXIBLE: i16 = $flex;
        }
        impl $crate::api::ApiMessage for $resp {
            const API_KEY: i16 = $key;
            const NAME: &'static str = $api_name;
            const MIN_VERSION: i16 = $min;
            const MAX_VERSION: i16 = $max;
            const FIRST_FLEXIBLE: i16 = $flex;
        }
        impl $crate::api::Request for $req {
            type Response = $resp;
        }
    };
}
