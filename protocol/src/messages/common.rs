//! Structs shared by several APIs' messages.
//! Both are tagged fields whose all -1 default means "not set", so they are omitted when unset.

wire_struct! {
    /// A partition's leader as a broker last knew it (KIP-951 leader discovery).
    pub struct LeaderIdAndEpoch {
        leader_id: i32 => 0.., default -1;
        leader_epoch: i32 => 0.., default -1;
    }
}

wire_struct! {
    /// A broker endpoint sent alongside a leader hint.
    pub struct NodeEndpoint {
        node_id: i32 => 0..;
        host: String => 0..;
        port: i32 => 0..;
        rack: Option<String> => 0..;
    }
}
