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
        cache_generation -> BigInt,
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

diesel::table! {
    provider_configs (id) {
        id -> Text,
        account_id -> Text,
        gateway_id -> Text,
        provider_slug -> Text,
        alias -> Text,
        default_config -> Bool,
        sealed_secret -> Text,
        secret_id -> Text,
        secret_preview -> Text,
        rate_limit -> Nullable<Double>,
        rate_limit_period -> Nullable<Double>,
        created_at -> BigInt,
        modified_at -> BigInt,
    }
}

diesel::table! {
    custom_providers (id) {
        id -> Text,
        account_id -> Text,
        slug -> Text,
        name -> Text,
        base_url -> Text,
        enable -> Bool,
        beta -> Bool,
        description -> Nullable<Text>,
        link -> Nullable<Text>,
        curl_example -> Nullable<Text>,
        js_example -> Nullable<Text>,
        headers -> Nullable<Text>,
        position -> Nullable<Double>,
        logo -> Text,
        created_at -> BigInt,
        modified_at -> BigInt,
    }
}

diesel::table! {
    config_version_counter (id) {
        id -> Text,
        value -> BigInt,
    }
}

diesel::table! {
    logs (id) {
        id -> Text,
        account_id -> Text,
        gateway_id -> Text,
        created_at -> BigInt,
        provider -> Text,
        model -> Nullable<Text>,
        model_type -> Nullable<Text>,
        path -> Text,
        request_type -> Nullable<Text>,
        request_content_type -> Nullable<Text>,
        response_content_type -> Nullable<Text>,
        status_code -> Integer,
        success -> Bool,
        cached -> Bool,
        duration -> BigInt,
        tokens_in -> Nullable<BigInt>,
        tokens_out -> Nullable<BigInt>,
        total_tokens -> BigInt,
        cached_tokens_in -> Nullable<BigInt>,
        cost -> Nullable<Double>,
        custom_cost -> Bool,
        metadata -> Nullable<Text>,
        event_id -> Text,
        step -> Integer,
        user_agent -> Nullable<Text>,
        authenticated -> Bool,
        request_size -> BigInt,
        response_size -> BigInt,
        bodies_stored -> Bool,
        feedback -> Nullable<Double>,
        score -> Nullable<Double>,
        config_hash -> Nullable<Text>,
        key_id -> Nullable<Text>,
        user_id -> Nullable<Text>,
        team_id -> Nullable<Text>,
        route_id -> Nullable<Text>,
        route_version_id -> Nullable<Text>,
        route_path -> Nullable<Text>,
    }
}

diesel::table! {
    log_bodies (id) {
        id -> Text,
        request_head -> Text,
        request_head_complete -> Bool,
        response_head -> Text,
        response_head_complete -> Bool,
        request_body -> Nullable<Text>,
        response_body -> Nullable<Text>,
    }
}

diesel::table! {
    log_counters (account_id, gateway_id) {
        account_id -> Text,
        gateway_id -> Text,
        stored -> BigInt,
    }
}

diesel::table! {
    teams (account_id, id) {
        account_id -> Text,
        id -> Text,
        name -> Text,
        metadata -> Text,
        limits -> Text,
        created_at -> BigInt,
        modified_at -> BigInt,
    }
}

diesel::table! {
    users (account_id, id) {
        account_id -> Text,
        id -> Text,
        name -> Text,
        team_id -> Nullable<Text>,
        metadata -> Text,
        limits -> Text,
        created_at -> BigInt,
        modified_at -> BigInt,
    }
}

diesel::table! {
    virtual_keys (account_id, id) {
        account_id -> Text,
        id -> Text,
        name -> Text,
        secret_hash -> Text,
        preview -> Text,
        gateways -> Text,
        models -> Text,
        user_id -> Nullable<Text>,
        team_id -> Nullable<Text>,
        metadata -> Text,
        limits -> Text,
        expires_at -> Nullable<BigInt>,
        created_at -> BigInt,
        modified_at -> BigInt,
        last_used_at -> Nullable<BigInt>,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    routes (id) {
        id -> Text,
        account_id -> Text,
        gateway_id -> Text,
        name -> Text,
        version_id -> Text,
        deployment_id -> Text,
        created_at -> BigInt,
        modified_at -> BigInt,
    }
}

diesel::table! {
    route_versions (id) {
        id -> Text,
        route_id -> Text,
        number -> BigInt,
        elements -> Text,
        comment -> Nullable<Text>,
        created_at -> BigInt,
    }
}

diesel::table! {
    route_deployments (id) {
        id -> Text,
        route_id -> Text,
        version_id -> Text,
        number -> BigInt,
        comment -> Nullable<Text>,
        created_at -> BigInt,
    }
}

diesel::table! {
    datasets (id) {
        id -> Text,
        account_id -> Text,
        gateway_id -> Text,
        name -> Text,
        enable -> Bool,
        filters -> Text,
        created_at -> BigInt,
        modified_at -> BigInt,
    }
}

diesel::table! {
    evaluations (id) {
        id -> Text,
        account_id -> Text,
        gateway_id -> Text,
        name -> Text,
        datasets -> Text,
        processed -> Bool,
        total_logs -> BigInt,
        created_at -> BigInt,
        modified_at -> BigInt,
    }
}

diesel::table! {
    evaluation_results (id) {
        id -> Text,
        evaluation_id -> Text,
        evaluation_type_id -> Text,
        position -> Integer,
        result -> Text,
        status -> Integer,
        status_description -> Text,
        total_logs -> BigInt,
        created_at -> BigInt,
        modified_at -> BigInt,
    }
}
