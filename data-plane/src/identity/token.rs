//! An identity provider's access token: its key from the provider's JWKS (waiting briefly for a refresh when the
//! `kid` is new), then signature, algorithm, issuer, audience and times.

use jsonwebtoken::errors::ErrorKind;
use serde_json::{Map, Value};

use super::jwks::KeyLookup;
use super::{CompiledProvider, KID_REFRESH_WAIT, Refusal};

/// The token's claims once everything checked out.
pub(super) async fn verify(
    provider: &CompiledProvider,
    token: &str,
) -> Result<Map<String, Value>, Refusal> {
    let header = jsonwebtoken::decode_header(token)
        .map_err(|_| Refusal::token("the token's header is unreadable"))?;
    let Some(validation) = provider.validation(header.alg) else {
        return Err(Refusal::token(format!(
            "the algorithm {:?} is not accepted for this issuer",
            header.alg
        )));
    };
    if header
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt"))
    {
        return Err(Refusal::token("a DPoP proof is not an access token"));
    }
    let kid = header.kid.as_deref();
    let mut keys = provider.jwks.keys();
    if matches!(keys.find(kid, header.alg), KeyLookup::UnknownKid) {
        // A rotated key: wait (briefly) for the refresh this asks for, or for the one already coming. The keys are
        // read again after subscribing, so a fetch that finished in between is not waited for.
        let mut fetched = provider.jwks.subscribe();
        keys = provider.jwks.keys();
        if matches!(keys.find(kid, header.alg), KeyLookup::UnknownKid)
            && provider.jwks.refresh_for_unknown_kid()
        {
            // Timing out is no error here: the kid is then still unknown and refused below.
            let _ = tokio::time::timeout(KID_REFRESH_WAIT, fetched.changed()).await;
            keys = provider.jwks.keys();
        }
    }
    let key = match keys.find(kid, header.alg) {
        KeyLookup::Found(key) => key,
        KeyLookup::UnknownKid => {
            return Err(Refusal::token(
                "no key of the issuer's JWKS matches the token's 'kid'",
            ));
        }
        KeyLookup::Unusable(why) => return Err(Refusal::token(why)),
    };
    let data =
        jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation).map_err(|e| {
            Refusal::token(match e.kind() {
                ErrorKind::InvalidSignature => "bad signature".to_owned(),
                ErrorKind::ExpiredSignature => "expired".to_owned(),
                ErrorKind::ImmatureSignature => "not valid yet (nbf)".to_owned(),
                ErrorKind::InvalidAudience => "wrong audience".to_owned(),
                ErrorKind::InvalidIssuer => "wrong issuer".to_owned(),
                ErrorKind::MissingRequiredClaim(claim) => format!("the '{claim}' claim is missing"),
                ErrorKind::InvalidClaimFormat(claim) => {
                    format!("the '{claim}' claim is malformed")
                }
                _ => "the token does not verify".to_owned(),
            })
        })?;
    Ok(data.claims)
}
