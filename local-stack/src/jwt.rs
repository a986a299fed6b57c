//! The JWT check the HttpApi authorizer makes, for the local stack: HS256 with a local dev key.
//!
//! In AWS the authorizer verifies RS256 tokens against the issuer's JWKS (Cognito, Auth0, Entra ID);
//! `JwtIssuer`/`JwtAudience` in template.yaml name them. Both check the same things: signature,
//! `exp` and `nbf`, `iss`, `aud`. Like API Gateway, claims reach the function as strings, arrays
//! rendered `[a b]`.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::Value as Json;
use std::collections::HashMap;

/// The local stack's signing key, unless `CLINFLOW_DEV_JWT_SECRET` says otherwise. Never used in AWS.
pub const DEV_SECRET: &str = "clinflow-local-dev-key-not-for-production";

pub fn dev_secret() -> String {
    std::env::var("CLINFLOW_DEV_JWT_SECRET").unwrap_or_else(|_| DEV_SECRET.to_owned())
}

#[derive(Clone)]
pub struct JwtCheck {
    key: DecodingKey,
    validation: Validation,
}

impl JwtCheck {
    pub fn new(secret: &str, issuer: &str, audience: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 0;
        Self {
            key: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    /// The claims of a valid `Authorization` header value (`Bearer <jwt>` or the bare token, as API
    /// Gateway accepts), rendered as API Gateway hands them to the function.
    pub fn verify(&self, authorization: &str) -> Option<HashMap<String, String>> {
        let token = authorization
            .strip_prefix("Bearer ")
            .or_else(|| authorization.strip_prefix("bearer "))
            .unwrap_or(authorization)
            .trim();
        let data =
            decode::<serde_json::Map<String, Json>>(token, &self.key, &self.validation).ok()?;
        Some(
            data.claims
                .into_iter()
                .map(|(k, v)| {
                    let rendered = match v {
                        Json::String(s) => s,
                        Json::Array(items) => format!(
                            "[{}]",
                            items
                                .iter()
                                .map(|i| i
                                    .as_str()
                                    .map(str::to_owned)
                                    .unwrap_or_else(|| i.to_string()))
                                .collect::<Vec<_>>()
                                .join(" ")
                        ),
                        other => other.to_string(),
                    };
                    (k, rendered)
                })
                .collect(),
        )
    }
}

/// What a dev token says.
pub struct TokenSpec<'a> {
    pub subject: &'a str,
    pub role: &'a str,
    pub sites: &'a [String],
    /// The `trials` claim; left out when empty.
    pub trials: &'a [String],
    pub issuer: &'a str,
    pub audience: &'a str,
    /// Seconds from now; negative for an already expired token (tests).
    pub ttl_seconds: i64,
}

pub fn mint(secret: &str, spec: &TokenSpec<'_>) -> String {
    mint_with(secret, spec, &[])
}

/// A dev token with more claims, e.g. `("subject", "SUBJ-0001")` for a patient's token.
pub fn mint_with(secret: &str, spec: &TokenSpec<'_>, extra: &[(&str, &str)]) -> String {
    let now = chrono::Utc::now().timestamp();
    let mut claims = serde_json::json!({
        "sub": spec.subject,
        "role": spec.role,
        "sites": spec.sites.join(","),
        "iss": spec.issuer,
        "aud": spec.audience,
        "iat": now,
        "nbf": now.min(now + spec.ttl_seconds),
        "exp": now + spec.ttl_seconds,
    });
    if !spec.trials.is_empty() {
        claims["trials"] = spec.trials.join(",").into();
    }
    for (name, value) in extra {
        claims[*name] = (*value).into();
    }
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ttl: i64) -> TokenSpec<'static> {
        static SITES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        TokenSpec {
            subject: "u1",
            role: "monitor",
            sites: SITES.get_or_init(|| vec!["S1".into(), "S2".into()]),
            trials: &[],
            issuer: "iss",
            audience: "aud",
            ttl_seconds: ttl,
        }
    }

    #[test]
    fn accepts_good_tokens_and_refuses_the_rest() {
        let check = JwtCheck::new("k", "iss", "aud");
        let claims = check
            .verify(&format!("Bearer {}", mint("k", &spec(60))))
            .unwrap();
        assert_eq!(claims["role"], "monitor");
        assert_eq!(claims["sites"], "S1,S2");
        assert!(check.verify(&mint("k", &spec(-10))).is_none(), "expired");
        assert!(
            check.verify(&mint("other", &spec(60))).is_none(),
            "bad signature"
        );
        assert!(
            JwtCheck::new("k", "iss", "other")
                .verify(&mint("k", &spec(60)))
                .is_none(),
            "audience"
        );
        assert!(
            JwtCheck::new("k", "other", "aud")
                .verify(&mint("k", &spec(60)))
                .is_none(),
            "issuer"
        );
        assert!(check.verify("Bearer not.a.jwt").is_none());
    }
}
