//! Diesel table definitions, written by hand in the type subset both backends share (see ARCHITECTURE.md):
//! `print-schema` output differs per backend, and MultiConnection only supports the common types.

diesel::table! {
    gateways (account_id, id) {
        account_id -> Text,
        id -> Text,
        internal_id -> Text,
        is_default -> Bool,
        settings -> Text,
        created_at -> BigInt,
        modified_at -> BigInt,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        public_key -> Text,
        sealed_private_key -> Text,
        created_at -> BigInt,
        retired_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Text,
        description -> Text,
        accounts -> Text,
        scopes -> Text,
        created_at -> BigInt,
        expires_at -> Nullable<BigInt>,
        revoked_at -> Nullable<BigInt>,
    }
}
