use super::{Duration, FailPath, OnTimeout, PathKind, Policy, PolicyFile, compile};
use crate::diag::Severity;
use crate::diag::{Diagnostic, Source};

fn load(text: &str) -> Result<Policy, Vec<Diagnostic>> {
    let src = Source {
        path: "p.toml".into(),
        text: text.into(),
    };
    let file: PolicyFile = src.parse().map_err(|d| vec![d])?;
    match compile(&src, file) {
        (p, e) if e.iter().all(|d| d.severity == Severity::Warning) => Ok(p),
        (_, e) => Err(e),
    }
}

/// The compiled policy and its warnings (the text must have no errors).
fn warned(text: &str) -> (Policy, Vec<Diagnostic>) {
    let src = Source {
        path: "p.toml".into(),
        text: text.into(),
    };
    let (p, diags) = compile(&src, src.parse().expect("parses"));
    assert!(
        diags.iter().all(|d| d.severity == Severity::Warning),
        "{diags:?}"
    );
    (p, diags)
}

#[test]
fn signing_and_reversal_are_switches_on_the_class() {
    // Written keys decide, whatever the class is called.
    let (p, w) = warned(
        "version = \"v\"\n[classes]\nfinancial = { path = \"deny\", signed = false }\npayments = { path = \"deny\", signed = true, retention = \"10y\" }\ninternal_reversible = { path = \"allow\", require_reversal = false }\n",
    );
    assert!(w.is_empty(), "{w:?}");
    assert!(!p.classes["financial"].signed);
    assert!(p.classes["payments"].signed);
    assert_eq!(
        p.classes["payments"].retention,
        super::parse_retention("10y").unwrap()
    );
    assert!(!p.classes["internal_reversible"].require_reversal);
    // A name alone switches nothing on, except the three an older version keyed on, which keep
    // that default with a warning naming the key to write.
    let (p, w) = warned(
        "version = \"v\"\n[classes]\ndestructive = { path = \"deny\" }\ninternal_reversible = { path = \"allow\" }\npayments = { path = \"deny\" }\n",
    );
    assert!(p.classes["destructive"].signed);
    assert_eq!(p.classes["destructive"].retention, super::RETENTION_SIGNED);
    assert!(p.classes["internal_reversible"].require_reversal);
    assert!(!p.classes["payments"].signed && !p.classes["payments"].require_reversal);
    assert_eq!(p.classes["payments"].retention, super::RETENTION_DEFAULT);
    let keys: Vec<_> = w.iter().map(|d| (d.key.as_str(), d.line)).collect();
    assert_eq!(
        keys,
        [
            ("classes.destructive.signed", 3),
            ("classes.internal_reversible.require_reversal", 4)
        ]
    );
    assert!(
        w[0].message.contains("write `signed = true`"),
        "{}",
        w[0].message
    );
}

#[test]
fn retention_prints_as_it_is_read() {
    for s in ["1y", "7y", "400d", "1d"] {
        let d = super::parse_retention(s).unwrap();
        assert_eq!(super::format_retention(d), s);
    }
}

const GOOD: &str = r#"
version = "v1"
[classes]
read_only = { path = "allow" }
financial = { path = "approve", role = "finance", timeout = "30m", on_timeout = "deny" }
support   = { path = "conditional", role = "finance", require_evidence = true }
[roles]
finance = { emails = ["f@example.com"] }
"#;

#[test]
fn compiles_the_contract_format() {
    let p = load(GOOD).unwrap();
    assert_eq!(p.version, "v1");
    let fin = &p.classes["financial"];
    assert_eq!(fin.path, PathKind::Approve);
    assert_eq!(fin.timeout, Duration::from_secs(1800));
    assert_eq!(fin.on_timeout, OnTimeout::Deny);
    assert_eq!(p.classes["support"].on_fail, FailPath::Approve);
    assert_eq!(p.classes["read_only"].on_fail, FailPath::Quarantine);
}

#[test]
fn bad_duration_is_located() {
    let e = load("version = \"v\"\n[classes]\nx = { path = \"approve\", role = \"r\", timeout = \"soon\" }\n[roles]\nr = { emails = [\"a@b.c\"] }\n").unwrap_err();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].line, 3);
    assert_eq!(e[0].key, "classes.x.timeout");
}

#[test]
fn unknown_role_and_role_without_emails() {
    let e = load("version = \"v\"\n[classes]\nx = { path = \"approve\", role = \"nobody\" }\n[roles]\nempty = { emails = [] }\n").unwrap_err();
    let keys: Vec<_> = e.iter().map(|d| d.key.as_str()).collect();
    assert!(keys.contains(&"classes.x.role"), "{keys:?}");
    assert!(keys.contains(&"roles.empty.emails"), "{keys:?}");
}

#[test]
fn approve_needs_a_role() {
    let e = load("version = \"v\"\n[classes]\nx = { path = \"approve\" }\n").unwrap_err();
    assert_eq!(e[0].key, "classes.x.role");
}

#[test]
fn unknown_path_is_a_parse_error_with_line() {
    let src = Source {
        path: "p.toml".into(),
        text: "version = \"v\"\n[classes]\nx = { path = \"maybe\" }\n".into(),
    };
    let d = src.parse::<PolicyFile>().unwrap_err();
    assert_eq!(d.line, 3);
    assert!(
        d.message.contains("maybe") || d.message.contains("variant"),
        "{}",
        d.message
    );
}

#[test]
fn escalation_loops_and_absurd_durations_are_refused() {
    let e = load("version = \"v\"\n[roles]\na = { emails = [\"a@b.c\"], escalate_to = \"b\" }\nb = { emails = [\"b@b.c\"], escalate_to = \"a\" }\n").unwrap_err();
    assert!(
        e.iter()
            .any(|d| d.key == "roles.a.escalate_to" && d.message.contains("a → b → a")),
        "{e:?}"
    );
    let e = load("version = \"v\"\n[roles]\na = { emails = [\"a@b.c\"], escalate_to = \"a\" }\n")
        .unwrap_err();
    assert!(e[0].message.contains("loops back"), "{e:?}");
    for bad in ["500ms", "10000y"] {
        let e = load(&format!("version = \"v\"\n[classes]\nx = {{ path = \"approve\", role = \"r\", timeout = \"{bad}\" }}\n[roles]\nr = {{ emails = [\"a@b.c\"] }}\n")).unwrap_err();
        assert_eq!(e[0].key, "classes.x.timeout", "{bad}");
    }
}

#[test]
fn escalate_needs_a_senior_role() {
    let e = load("version = \"v\"\n[classes]\nx = { path = \"approve\", role = \"r\", on_timeout = \"escalate\" }\n[roles]\nr = { emails = [\"a@b.c\"] }\n").unwrap_err();
    assert_eq!(e[0].key, "classes.x.on_timeout");
}

#[test]
fn a_matter_needing_several_roles_requires_the_strictest_of_them_and_of_its_class() {
    use super::{Requirement, SecondFactor, SignIn};
    let p = load(
        r#"
version = "v1"
[classes]
read_only = { path = "allow" }
financial = { path = "allow", second_factor = "totp" }
[roles]
ops = { emails = ["ops@example.com"] }
cfo = { emails = ["cfo@example.com", "Ops@Example.com"], sign_in = "oidc" }
sec = { emails = ["sec@example.com"], second_factor = "totp" }
"#,
    )
    .unwrap();
    let roles = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let plain = Requirement::default();
    assert_eq!(p.requirement_of(&roles(&["ops"]), Some("read_only")), plain);
    assert!(!plain.beyond_link());
    let oidc = p.requirement_of(&roles(&["ops", "cfo"]), None);
    assert_eq!(
        oidc,
        Requirement {
            sign_in: SignIn::Oidc,
            second_factor: None
        }
    );
    let both = p.requirement_of(&roles(&["cfo", "sec"]), None);
    assert_eq!(both.second_factor, Some(SecondFactor::Totp));
    assert_eq!(both.sign_in, SignIn::Oidc);
    assert!(both.words().contains("signing in") && both.words().contains("TOTP"));
    // the class of the call adds its second factor to a role that asks for none
    let by_class = p.requirement_of(&roles(&["ops"]), Some("financial"));
    assert_eq!(by_class.second_factor, Some(SecondFactor::Totp));
    assert!(by_class.beyond_link());
    // unknown names add nothing; membership ignores case
    assert_eq!(
        p.requirement_of(&roles(&["nobody"]), Some("nothing")),
        plain
    );
    assert_eq!(p.roles_of("ops@example.com"), roles(&["cfo", "ops"]));
}

#[test]
fn revealing_redacted_values_needs_a_role_that_signs_in() {
    let text = "version = \"v\"\n[classes]\nfinancial = { path = \"approve\", role = \"finance\", signed = true }\n[roles]\nfinance = { emails = [\"a@example.com\"], reveal_redacted = true }\n";
    let src = crate::diag::Source {
        path: "p.toml".into(),
        text: text.into(),
    };
    let file: super::file::PolicyFile = src.parse().unwrap();
    let (_, errors) = super::compile(&src, file);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        (errors[0].key.as_str(), errors[0].line),
        ("roles.finance.reveal_redacted", 5)
    );
    assert!(errors[0].message.contains("sign_in = \"oidc\""));
}
