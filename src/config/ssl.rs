//! The TLS directives (nginx's `ngx_mail_ssl_module`, and Postern's own
//! `proxy_ssl*`): their setters, and the checks nginx makes when it merges
//! a server's TLS settings. Files are only named here; `tls::ServerTls` and
//! `tls::BackendTls` load them.

use std::path::PathBuf;
use std::time::Duration;

use super::build::{Env, ServerDraft};
use super::directives::{flag_arg, only, time_arg};
use super::model::{Listen, Location, ProxyTls, SessionCache, Starttls, TlsSettings, TlsVersion, VerifyClient};
use super::parser::Directive;
use super::values::{self, invalid_value};
use super::ConfigError;

/// `ssl_session_cache builtin` without a size: OpenSSL's default, in sessions.
pub(crate) const DEFAULT_BUILTIN_SESSIONS: usize = 20480;
/// nginx: "one megabyte can store about 4000 sessions".
pub(crate) const SESSIONS_PER_MEGABYTE: usize = 4000;
/// nginx refuses a shared zone smaller than 8 pages.
const MIN_SHARED_CACHE: usize = 8 * 4096;

pub(super) fn set_starttls(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    let value = only(d)?;
    s.starttls = Some(match value {
        "off" => Starttls::Off,
        "on" => Starttls::On,
        "only" => Starttls::Only,
        _ => return Err(invalid_value(value, &d.name)),
    });
    s.starttls_at = Some(d.location.clone());
    Ok(())
}

pub(super) fn set_ssl_certificate(s: &mut ServerDraft, d: &Directive, env: &mut Env) -> Result<(), String> {
    let path = file_arg(d, env)?;
    s.ssl_certificates
        .get_or_insert_with(Vec::new)
        .push((path, d.location.clone()));
    Ok(())
}

pub(super) fn set_ssl_certificate_key(s: &mut ServerDraft, d: &Directive, env: &mut Env) -> Result<(), String> {
    let path = file_arg(d, env)?;
    s.ssl_certificate_keys
        .get_or_insert_with(Vec::new)
        .push((path, d.location.clone()));
    Ok(())
}

/// nginx's bitmask words, compared without case. rustls has only TLS 1.2
/// and 1.3: the older ones are accepted with a warning (a file written for
/// nginx often lists them) as long as one of those two remains.
pub(super) fn set_ssl_protocols(s: &mut ServerDraft, d: &Directive, env: &mut Env) -> Result<(), String> {
    let mut versions = Vec::new();
    let mut not_offered = Vec::new();
    for word in &d.args {
        match word.to_ascii_lowercase().as_str() {
            "tlsv1.2" => push_unique(&mut versions, TlsVersion::V1_2),
            "tlsv1.3" => push_unique(&mut versions, TlsVersion::V1_3),
            "sslv2" | "sslv3" | "tlsv1" | "tlsv1.1" => not_offered.push(word.as_str()),
            _ => return Err(invalid_value(word, &d.name)),
        }
    }
    if versions.is_empty() {
        return Err(format!(
            "\"{}\" enables no version rustls offers: it has TLSv1.2 and TLSv1.3 only",
            d.name
        ));
    }
    if !not_offered.is_empty() {
        env.warn(format!(
            "\"{}\": {} not offered: rustls has TLSv1.2 and TLSv1.3 only in {}",
            d.name,
            not_offered.join(", "),
            d.location
        ));
    }
    // rustls takes the versions as a set; keep a stable order.
    versions.sort_by_key(|v| match v {
        TlsVersion::V1_2 => 0,
        TlsVersion::V1_3 => 1,
    });
    s.ssl_protocols = Some(versions);
    Ok(())
}

fn push_unique<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// Mapped now, so that `-t` shows what rustls will offer; whether an empty
/// selection matters depends on `ssl_protocols`, checked at the merge.
pub(super) fn set_ssl_ciphers(s: &mut ServerDraft, d: &Directive, env: &mut Env) -> Result<(), String> {
    let spec = only(d)?;
    let selection = crate::tls::ciphers::select(spec);
    if !selection.not_offered.is_empty() {
        env.warn(format!(
            "\"{}\": {} not offered by rustls, ignored in {}",
            d.name,
            selection
                .not_offered
                .iter()
                .map(|w| format!("\"{w}\""))
                .collect::<Vec<_>>()
                .join(", "),
            d.location
        ));
    }
    if !selection.tls13_names.is_empty() {
        env.warn(format!(
            "\"{}\": {} ignored: the TLSv1.3 suites are always all enabled, as with OpenSSL's cipher list in {}",
            d.name,
            selection.tls13_names.join(", "),
            d.location
        ));
    }
    s.ssl_ciphers = Some((spec.to_string(), d.location.clone()));
    Ok(())
}

pub(super) fn set_ssl_prefer_server_ciphers(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    s.ssl_prefer_server_ciphers = Some(flag_arg(d)?);
    Ok(())
}

pub(super) fn set_ssl_ecdh_curve(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    let value = only(d)?;
    crate::tls::kx::groups(value).map_err(|why| format!("{why} in \"{}\" directive", d.name))?;
    s.ssl_ecdh_curve = Some(value.to_string());
    Ok(())
}

/// `off | none | [builtin[:size]] [shared:name:size]`, as nginx reads it:
/// the last of off/none/builtin wins for the built-in part, and off or none
/// leaves no cache at all even with a shared zone (nginx then never looks
/// at the zone).
pub(super) fn set_ssl_session_cache(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    enum Builtin {
        Unset,
        Off,
        None,
        Sessions(usize),
    }
    let mut builtin = Builtin::Unset;
    let mut shared = 0usize;
    for word in &d.args {
        let invalid = || format!("invalid session cache \"{word}\"");
        match word.as_str() {
            "off" => builtin = Builtin::Off,
            "none" => builtin = Builtin::None,
            "builtin" => builtin = Builtin::Sessions(DEFAULT_BUILTIN_SESSIONS),
            _ => {
                if let Some(size) = word.strip_prefix("builtin:").filter(|s| !s.is_empty()) {
                    builtin = Builtin::Sessions(values::parse_number(size).ok_or_else(invalid)?);
                } else if let Some(rest) = word.strip_prefix("shared:").filter(|s| !s.is_empty()) {
                    let (name, size) = rest.split_once(':').ok_or_else(invalid)?;
                    if name.is_empty() {
                        return Err(invalid());
                    }
                    let bytes = values::parse_size(size).ok_or_else(invalid)?;
                    if bytes < MIN_SHARED_CACHE {
                        return Err(format!("session cache \"{word}\" is too small"));
                    }
                    let sessions = bytes / (1 << 20) * SESSIONS_PER_MEGABYTE
                        + bytes % (1 << 20) * SESSIONS_PER_MEGABYTE / (1 << 20);
                    shared = shared.saturating_add(sessions);
                } else {
                    return Err(invalid());
                }
            }
        }
    }
    s.ssl_session_cache = Some(match builtin {
        Builtin::Off => SessionCache::Off,
        Builtin::None => SessionCache::None,
        Builtin::Sessions(n) => SessionCache::Sessions(n.saturating_add(shared)),
        Builtin::Unset => SessionCache::Sessions(shared),
    });
    Ok(())
}

pub(super) fn set_ssl_session_tickets(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    s.ssl_session_tickets = Some(flag_arg(d)?);
    Ok(())
}

pub(super) fn set_ssl_session_timeout(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    s.ssl_session_timeout = Some(time_arg(d)?);
    Ok(())
}

pub(super) fn set_ssl_verify_client(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    let value = only(d)?;
    s.ssl_verify_client = Some(match value {
        "off" => VerifyClient::Off,
        "on" => VerifyClient::On,
        "optional" => VerifyClient::Optional,
        "optional_no_ca" => VerifyClient::OptionalNoCa,
        _ => return Err(invalid_value(value, &d.name)),
    });
    Ok(())
}

pub(super) fn set_ssl_verify_depth(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    let value = only(d)?;
    let depth = values::parse_number(value)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| invalid_value(value, &d.name))?;
    s.ssl_verify_depth = Some(depth);
    Ok(())
}

pub(super) fn set_ssl_client_certificate(s: &mut ServerDraft, d: &Directive, env: &mut Env) -> Result<(), String> {
    s.ssl_client_certificate = Some((file_arg(d, env)?, d.location.clone()));
    Ok(())
}

pub(super) fn set_ssl_trusted_certificate(s: &mut ServerDraft, d: &Directive, env: &mut Env) -> Result<(), String> {
    s.ssl_trusted_certificate = Some((file_arg(d, env)?, d.location.clone()));
    Ok(())
}

pub(super) fn set_ssl_crl(s: &mut ServerDraft, d: &Directive, env: &mut Env) -> Result<(), String> {
    s.ssl_crl = Some((file_arg(d, env)?, d.location.clone()));
    Ok(())
}

pub(super) fn set_auth_http_pass_client_cert(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    s.auth_http_pass_client_cert = Some(flag_arg(d)?);
    Ok(())
}

pub(super) fn set_proxy_ssl(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    s.proxy_ssl = Some(flag_arg(d)?);
    Ok(())
}

pub(super) fn set_proxy_ssl_verify(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    s.proxy_ssl_verify = Some(flag_arg(d)?);
    s.proxy_ssl_verify_at = Some(d.location.clone());
    Ok(())
}

pub(super) fn set_proxy_ssl_trusted_certificate(
    s: &mut ServerDraft,
    d: &Directive,
    env: &mut Env,
) -> Result<(), String> {
    s.proxy_ssl_trusted_certificate = Some((file_arg(d, env)?, d.location.clone()));
    Ok(())
}

/// A DNS name or an IP address, as rustls takes a server name.
pub(super) fn set_proxy_ssl_name(s: &mut ServerDraft, d: &Directive, _: &mut Env) -> Result<(), String> {
    let value = only(d)?;
    if rustls_pki_types::ServerName::try_from(value).is_err() {
        return Err(invalid_value(value, &d.name));
    }
    s.proxy_ssl_name = Some(value.to_string());
    Ok(())
}

/// A file, relative to the prefix or the configuration's folder as `pid`
/// and `error_log` are (nginx's conf prefix for ssl files).
fn file_arg(d: &Directive, env: &Env) -> Result<PathBuf, String> {
    let value = only(d)?;
    if value.is_empty() {
        return Err(invalid_value(value, &d.name));
    }
    if value.starts_with("data:") || value.starts_with("engine:") || value.starts_with("store:") {
        let kind = value.split(':').next().unwrap_or(value);
        return Err(format!(
            "\"{}\" with \"{kind}:\" is not supported: give a PEM file",
            d.name
        ));
    }
    Ok(env.path(value))
}

/// The TLS part of a merged server, after nginx's checks
/// (`ngx_mail_ssl_merge_conf`) and Postern's for `proxy_ssl_verify`.
pub(super) struct TlsParts {
    pub(super) starttls: Starttls,
    pub(super) ssl: TlsSettings,
    pub(super) auth_http_pass_client_cert: bool,
    pub(super) proxy_ssl: ProxyTls,
}

/// Every row here has a default, so `None` is a table mistake.
fn set<T>(value: Option<T>, name: &str, at: &Location) -> Result<T, ConfigError> {
    value.ok_or_else(|| ConfigError::at(format!("internal error: \"{name}\" has no value"), at.clone()))
}

pub(super) fn finish(draft: &mut ServerDraft, listen: &[Listen], server: &Location) -> Result<TlsParts, ConfigError> {
    let starttls = set(draft.starttls, "starttls", server)?;
    let protocols = set(draft.ssl_protocols.take(), "ssl_protocols", server)?;
    let (ciphers, ciphers_at) = set(draft.ssl_ciphers.take(), "ssl_ciphers", server)?;
    let certificates = draft.ssl_certificates.take().unwrap_or_default();
    let certificate_keys = draft.ssl_certificate_keys.take().unwrap_or_default();
    let verify_client = set(draft.ssl_verify_client, "ssl_verify_client", server)?;
    let client_certificate = draft.ssl_client_certificate.take();
    let trusted_certificate = draft.ssl_trusted_certificate.take();

    // nginx checks only servers that use TLS; the mode names the directive
    // that asked for it, and the location is that directive's.
    let mode = if let Some(l) = listen.iter().find(|l| l.params.ssl) {
        Some(("listen ... ssl", l.location.clone()))
    } else if starttls != Starttls::Off {
        Some(("starttls", draft.starttls_at.clone().unwrap_or_else(|| server.clone())))
    } else {
        None
    };
    if let Some((mode, at)) = mode {
        if certificates.is_empty() {
            return Err(ConfigError::at(
                format!("no \"ssl_certificate\" is defined for the \"{mode}\" directive"),
                at,
            ));
        }
        if certificate_keys.is_empty() {
            return Err(ConfigError::at(
                format!("no \"ssl_certificate_key\" is defined for the \"{mode}\" directive"),
                at,
            ));
        }
        if let Some((cert, _)) = certificates.get(certificate_keys.len()) {
            return Err(ConfigError::at(
                format!(
                    "no \"ssl_certificate_key\" is defined for certificate \"{}\" and the \"{mode}\" directive",
                    cert.display()
                ),
                at,
            ));
        }
        // nginx ignores keys beyond the certificates; one is more likely a
        // forgotten certificate than a spare, so it is refused.
        if let Some((key, key_at)) = certificate_keys.get(certificates.len()) {
            return Err(ConfigError::at(
                format!(
                    "no \"ssl_certificate\" is defined for certificate key \"{}\"",
                    key.display()
                ),
                key_at.clone(),
            ));
        }
        if matches!(verify_client, VerifyClient::On | VerifyClient::Optional)
            && client_certificate.is_none()
            && trusted_certificate.is_none()
        {
            return Err(ConfigError::at(
                "no ssl_client_certificate or ssl_trusted_certificate for ssl_verify_client",
                server.clone(),
            ));
        }
        if protocols.contains(&TlsVersion::V1_2) && crate::tls::ciphers::select(&ciphers).suites.is_empty() {
            return Err(ConfigError::at(
                format!(
                    "\"ssl_ciphers\" \"{ciphers}\" leaves no cipher suite rustls offers for TLSv1.2: \
                     change it or drop TLSv1.2 from \"ssl_protocols\""
                ),
                ciphers_at,
            ));
        }
    }

    let proxy_verify = set(draft.proxy_ssl_verify, "proxy_ssl_verify", server)?;
    let proxy_trusted = draft.proxy_ssl_trusted_certificate.take();
    if proxy_verify && proxy_trusted.is_none() {
        return Err(ConfigError::at(
            "no proxy_ssl_trusted_certificate for proxy_ssl_verify",
            draft.proxy_ssl_verify_at.clone().unwrap_or_else(|| server.clone()),
        ));
    }

    Ok(TlsParts {
        starttls,
        ssl: TlsSettings {
            certificates,
            certificate_keys,
            protocols,
            ciphers,
            prefer_server_ciphers: set(draft.ssl_prefer_server_ciphers, "ssl_prefer_server_ciphers", server)?,
            ecdh_curve: set(draft.ssl_ecdh_curve.take(), "ssl_ecdh_curve", server)?,
            session_cache: set(draft.ssl_session_cache.take(), "ssl_session_cache", server)?,
            session_tickets: set(draft.ssl_session_tickets, "ssl_session_tickets", server)?,
            session_timeout: set::<Duration>(draft.ssl_session_timeout, "ssl_session_timeout", server)?,
            verify_client,
            verify_depth: set(draft.ssl_verify_depth, "ssl_verify_depth", server)?,
            client_certificate,
            trusted_certificate,
            crl: draft.ssl_crl.take(),
        },
        auth_http_pass_client_cert: set(draft.auth_http_pass_client_cert, "auth_http_pass_client_cert", server)?,
        proxy_ssl: ProxyTls {
            enabled: set(draft.proxy_ssl, "proxy_ssl", server)?,
            verify: proxy_verify,
            trusted_certificate: proxy_trusted,
            name: draft.proxy_ssl_name.take(),
        },
    })
}
