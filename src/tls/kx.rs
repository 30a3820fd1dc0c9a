//! `ssl_ecdh_curve`: `auto` or a `:`-separated list of groups, as OpenSSL
//! names them, mapped to the key-exchange groups rustls (ring) has.

use rustls::crypto::ring::kx_group;
use rustls::crypto::SupportedKxGroup;

/// The groups, in the given order; `None` for `auto` (ring's defaults:
/// X25519, P-256, P-384). Errors are whole sentences naming the curve.
pub fn groups(spec: &str) -> Result<Option<Vec<&'static dyn SupportedKxGroup>>, String> {
    if spec == "auto" {
        return Ok(None);
    }
    let mut groups: Vec<&'static dyn SupportedKxGroup> = Vec::new();
    for name in spec.split(':') {
        let group = match name.to_ascii_lowercase().as_str() {
            "x25519" => kx_group::X25519,
            "prime256v1" | "secp256r1" | "p-256" => kx_group::SECP256R1,
            "secp384r1" | "p-384" => kx_group::SECP384R1,
            _ => {
                return Err(format!(
                    "curve \"{name}\" is not offered by rustls (X25519, prime256v1, secp384r1)"
                ))
            }
        };
        if !groups.iter().any(|g| g.name() == group.name()) {
            groups.push(group);
        }
    }
    Ok(Some(groups))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::NamedGroup;

    #[test]
    fn rows() {
        let named = |spec: &str| groups(spec).map(|g| g.map(|g| g.iter().map(|g| g.name()).collect::<Vec<_>>()));
        assert_eq!(named("auto"), Ok(None));
        assert_eq!(
            named("X25519:prime256v1:secp384r1"),
            Ok(Some(vec![
                NamedGroup::X25519,
                NamedGroup::secp256r1,
                NamedGroup::secp384r1
            ]))
        );
        assert_eq!(
            named("P-384:P-256"),
            Ok(Some(vec![NamedGroup::secp384r1, NamedGroup::secp256r1]))
        );
        assert_eq!(
            named("secp521r1"),
            Err("curve \"secp521r1\" is not offered by rustls (X25519, prime256v1, secp384r1)".to_string())
        );
        assert!(named("X25519:").is_err());
    }
}
