//! The headers Airlock sends an HTTP tool server: `[[server]] headers`, with `${VAR}` read from
//! the environment when the server is connected. It must never log a header's value (a secret).

use crate::config::ServerConfig;

/// The headers for an HTTP tool server, with `${VAR}` read from the environment now.
pub(super) fn resolve_headers(
    config: &ServerConfig,
) -> Result<std::collections::HashMap<axum::http::HeaderName, axum::http::HeaderValue>, String> {
    let mut out = std::collections::HashMap::new();
    for (name, template) in &config.headers {
        let mut value = String::new();
        let mut rest = template.as_str();
        while let Some(start) = rest.find("${") {
            value.push_str(&rest[..start]);
            let Some(len) = rest[start + 2..].find('}') else {
                return Err(format!("header `{name}`: `${{` without a closing `}}`"));
            };
            let var = &rest[start + 2..start + 2 + len];
            let v = std::env::var(var).map_err(|_| {
                format!("header `{name}` needs the environment variable `{var}`, which is not set")
            })?;
            value.push_str(&v);
            rest = &rest[start + 3 + len..];
        }
        value.push_str(rest);
        let n = axum::http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| format!("header name `{name}`: {e}"))?;
        let v = axum::http::HeaderValue::from_str(&value)
            .map_err(|e| format!("header `{name}`: not a valid value: {e}"))?;
        out.insert(n, v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::resolve_headers;
    use crate::config::ServerConfig;

    fn server(headers: &[(&str, &str)]) -> ServerConfig {
        ServerConfig {
            name: "s".into(),
            command: String::new(),
            url: Some("http://127.0.0.1:1/mcp".into()),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            args: vec![],
            env: Default::default(),
            cwd: ".".into(),
            prefix: String::new(),
            timeout: std::time::Duration::from_secs(1),
            relist: None,
        }
    }

    #[test]
    fn header_secrets_come_from_the_environment_and_a_missing_one_is_named() {
        // PATH is set in every environment this runs in
        let path = std::env::var("PATH").unwrap();
        let h = resolve_headers(&server(&[("X-Key", "a-${PATH}-b")])).unwrap();
        assert_eq!(
            h.values().next().unwrap().to_str().unwrap(),
            format!("a-{path}-b")
        );
        let e =
            resolve_headers(&server(&[("X-Key", "${AIRLOCK_SURELY_UNSET_VARIABLE}")])).unwrap_err();
        assert!(
            e.contains("AIRLOCK_SURELY_UNSET_VARIABLE") && e.contains("not set"),
            "{e}"
        );
        assert!(resolve_headers(&server(&[("X-Key", "${OPEN")])).is_err());
        assert!(resolve_headers(&server(&[("Bad Name", "v")])).is_err());
    }
}
