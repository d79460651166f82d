//! Push-token kit for the tests: an RSA key pair with its JWK set, and OIDC tokens signed as
//! Pub/Sub signs them.

use base64::Engine;
use serde_json::{json, Value};

/// An RSA key pair for signing test tokens, and its JWK set.
pub struct Keys {
    pub kid: String,
    pub pem: String,
    pub jwks: Value,
}

/// A fresh 2048-bit RSA key pair named `kid`.
pub fn keys(kid: &str) -> Keys {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::traits::PublicKeyParts;
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let pem = key.to_pkcs1_pem(Default::default()).unwrap().to_string();
    let jwks = json!({"keys": [{
        "kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
        "n": url.encode(key.n().to_bytes_be()),
        "e": url.encode(key.e().to_bytes_be()),
    }]});
    Keys {
        kid: kid.into(),
        pem,
        jwks,
    }
}

/// An OIDC token as Pub/Sub signs it: issued by Google to `email` for audience `aud`,
/// expiring in `exp_in` seconds (negative: already expired), signed with `keys`.
pub fn token(keys: &Keys, aud: &str, email: &str, exp_in: i64) -> String {
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    h.kid = Some(keys.kid.clone());
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "iss": "https://accounts.google.com", "aud": aud, "email": email, "email_verified": true,
        "sub": "1234", "iat": now, "exp": now + exp_in,
    });
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(keys.pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&h, &claims, &key).unwrap()
}
