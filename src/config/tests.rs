use super::{Config, ConfigFile, Diagnostic, PathBuf, Source, compile};

fn cfg(text: &str) -> Result<Config, Vec<Diagnostic>> {
    let src = Source {
        path: "/etc/airlock/airlock.toml".into(),
        text: text.into(),
    };
    let file: ConfigFile = src.parse().map_err(|d| vec![d])?;
    compile(&src, file)
}

#[test]
fn defaults_and_relative_paths() {
    let c = cfg("[[server]]\nname = \"shop\"\ncommand = \"demo\"\n").unwrap();
    assert_eq!(c.ledger_path, PathBuf::from("/etc/airlock/airlock.redb"));
    assert_eq!(
        c.manifests_dir,
        PathBuf::from("/etc/airlock/tool-manifests")
    );
    assert_eq!(c.servers[0].prefix, "shop__");
    assert_eq!(c.servers[0].exposed("x"), "shop__x");
    assert_eq!(c.actor, "agent:default");
}

#[test]
fn duplicate_prefix_is_refused_with_location() {
    let e = cfg("[[server]]\nname = \"a\"\ncommand = \"x\"\nprefix = \"\"\n\n[[server]]\nname = \"b\"\ncommand = \"y\"\nprefix = \"\"\n").unwrap_err();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].key, "server[1].prefix");
    assert_eq!(e[0].line, 6);
}

#[test]
fn overlapping_prefixes_are_refused() {
    let e = cfg("[[server]]\nname = \"a\"\ncommand = \"x\"\nprefix = \"\"\n[[server]]\nname = \"b\"\ncommand = \"y\"\n").unwrap_err();
    assert_eq!(e.len(), 1);
    assert!(
        e[0].message.contains("overlaps prefix ``"),
        "{}",
        e[0].message
    );
    let e = cfg("[[server]]\nname = \"a\"\ncommand = \"x\"\nprefix = \"a_\"\n[[server]]\nname = \"b\"\ncommand = \"y\"\nprefix = \"a\"\n").unwrap_err();
    assert_eq!(e[0].key, "server[1].prefix");
    assert!(
        cfg(
            "[[server]]\nname = \"a\"\ncommand = \"x\"\n[[server]]\nname = \"b\"\ncommand = \"y\"\n"
        )
        .is_ok(),
        "default prefixes a__ and b__ are disjoint"
    );
    let e = cfg("[[server]]\nname = \"a\"\ncommand = \"x\"\nprefix = \"a b\"\n").unwrap_err();
    assert!(e[0].message.contains("may only use"), "{}", e[0].message);
}

#[test]
fn duplicate_server_and_missing_command() {
    let e = cfg("[[server]]\nname = \"a\"\ncommand = \"x\"\n[[server]]\nname = \"a\"\nprefix = \"z\"\ncommand = \"x\"\n[[server]]\nname = \"c\"\n").unwrap_err();
    let keys: Vec<_> = e.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(keys, ["server[1].name", "server[2].command"]);
}

#[test]
fn unknown_key_in_gate_is_located() {
    let src = Source {
        path: "a.toml".into(),
        text: "[gate]\nledgr = \"x\"\n".into(),
    };
    let d = src.parse::<ConfigFile>().unwrap_err();
    assert_eq!(d.line, 2);
    assert!(d.message.contains("ledgr"), "{}", d.message);
}

#[test]
fn http_servers_are_relisted_every_30s_by_default_and_a_bad_interval_is_located() {
    let c = cfg("[[server]]\nname = \"far\"\nurl = \"http://127.0.0.1:9/mcp\"\n\n[[server]]\nname = \"near\"\ncommand = \"x\"\n").unwrap();
    assert_eq!(
        c.servers[0].relist,
        Some(std::time::Duration::from_secs(30))
    );
    assert_eq!(c.servers[1].relist, None, "a stdio server is not relisted");
    let e =
        cfg("[[server]]\nname = \"far\"\nurl = \"http://127.0.0.1:9/mcp\"\nrelist = \"often\"\n")
            .unwrap_err();
    assert_eq!(e[0].key, "server[0].relist");
    assert_eq!(e[0].line, 1);
}

#[test]
fn store_selects_postgres_and_never_takes_a_password_in_the_url() {
    let c =
        cfg("[store]\nurl = \"postgres://airlock@db:5432/airlock\"\npassword_env = \"DB_PW\"\n")
            .unwrap();
    assert_eq!(
        c.ledger,
        crate::ledger::Location::Postgres(crate::ledger::postgres::PgTarget {
            url: "postgres://airlock@db:5432/airlock".into(),
            password_env: Some("DB_PW".into()),
            replica: None,
        })
    );
    assert_eq!(
        cfg("").unwrap().ledger,
        crate::ledger::Location::File(PathBuf::from("/etc/airlock/airlock.redb")),
        "without [store], the redb file"
    );
    let e = cfg("[store]\nurl = \"postgres://airlock:secret@db/airlock\"\n").unwrap_err();
    assert_eq!(e[0].key, "store.url");
    assert!(e[0].message.contains("password_env"), "{}", e[0].message);
    assert!(
        !e[0].message.contains("secret"),
        "the password is not echoed"
    );
    let e = cfg("[store]\nurl = \"mysql://db/airlock\"\n").unwrap_err();
    assert_eq!(e[0].key, "store.url");
    let e = cfg("[store]\nurl = \"postgres://db\"\n").unwrap_err();
    assert!(
        e[0].message.contains("names no database"),
        "{}",
        e[0].message
    );
}

#[test]
fn checkpoints_default_beside_the_ledger_and_ledger_keys_are_checked_where_written() {
    let c = cfg("[gate]\nledger = \"data/l.redb\"\n").unwrap();
    assert_eq!(
        c.checkpoints.dir,
        PathBuf::from("/etc/airlock/data/l.redb.checkpoints")
    );
    assert_eq!(c.checkpoints.every, std::time::Duration::from_secs(60));
    assert_eq!(
        (
            c.checkpoints.witness.as_deref(),
            c.checkpoints.origin.as_deref()
        ),
        (None, None)
    );
    let c = cfg("[store]\nurl = \"postgres://a@db:5432/airlock\"\n").unwrap();
    assert_eq!(c.checkpoints.dir, PathBuf::from("/etc/airlock/checkpoints"));
    let c = cfg("[gate]\ncheckpoints = \"cps\"\ncheckpoint_every = \"10s\"\n[ledger]\nwitness = \"http://w.example.com/cp\"\nmail_to = \"audit@example.com\"\norigin = \"example.com/airlock\"\n").unwrap();
    assert_eq!(c.checkpoints.dir, PathBuf::from("/etc/airlock/cps"));
    assert_eq!(c.checkpoints.every, std::time::Duration::from_secs(10));
    assert_eq!(
        c.checkpoints.witness.as_deref(),
        Some("http://w.example.com/cp")
    );
    assert_eq!(c.checkpoints.mail_to.as_deref(), Some("audit@example.com"));
    let e = cfg("[ledger]\norigin = \"a b\"\nwitness = \"https://w/\"\nmail_to = \"nobody\"\nmail_every = \"soon\"\n")
        .unwrap_err();
    let found: Vec<(&str, usize)> = e.iter().map(|d| (d.key.as_str(), d.line)).collect();
    assert_eq!(
        found,
        [
            ("ledger.mail_every", 0),
            ("ledger.origin", 2),
            ("ledger.witness", 3),
            ("ledger.mail_to", 4)
        ]
    );
    let e = cfg("[ledger]\nwitnes = \"http://w/\"\n").unwrap_err();
    assert!(e[0].message.contains("unknown field"), "{}", e[0].message);
}

#[test]
fn oauth_problems_are_located_at_their_key_and_line() {
    let e = cfg("[oauth]\nissuer = \"http://login.example.com\"\nresource = \"https://airlock.example.com\"\nactor_prefix = \"oauth\"\nscopes = [\"mcp tools\"]\nleeway = \"1h\"\n").unwrap_err();
    let at: Vec<_> = e.iter().map(|d| (d.key.as_str(), d.line)).collect();
    assert_eq!(
        at,
        [
            ("oauth.issuer", 2),
            ("oauth.resource", 3),
            ("oauth.actor_prefix", 4),
            ("oauth.scopes", 5),
            ("oauth.leeway", 6)
        ],
        "{e:?}"
    );
    let ok = cfg("[oauth]\nissuer = \"https://login.example.com/\"\nresource = \"https://airlock.example.com/mcp\"\nscopes = [\"mcp:tools\"]\n\n[http]\nbind = \"127.0.0.1:8790\"\n").unwrap();
    let o = ok.oauth.expect("[oauth]");
    assert_eq!(
        o.issuer, "https://login.example.com/",
        "kept exactly as written"
    );
    assert_eq!(
        (o.actor_claim.as_str(), o.actor_prefix.as_str()),
        ("sub", "oauth:")
    );
    assert!(ok.agents.is_empty(), "[oauth] alone lets HTTP agents in");
    // a static agent named like an OAuth one would share its identity
    let e = cfg(&format!("[gate]\nactor = \"OAuth:bot\"\n[oauth]\nissuer = \"https://login.example.com\"\nresource = \"https://airlock.example.com/mcp\"\n\n[[agent]]\nactor = \"oauth:ci\"\ntoken_sha256 = \"{}\"\n", "ab".repeat(32))).unwrap_err();
    let said: Vec<_> = e.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(e.len(), 2, "{said:?}");
    assert!(
        said[0].contains("gate.actor is `OAuth:bot`") && said[1].contains("`oauth:ci`"),
        "{said:?}"
    );
}

#[test]
fn limits_default_and_a_bad_one_is_named_with_its_line() {
    let c = cfg("[[server]]\nname = \"shop\"\ncommand = \"demo\"\n").unwrap();
    assert_eq!(c.limits, super::limits::Limits::default());
    let c =
        cfg("[limits]\nconnections = 8\nconnections_per_address = 100\nledger_cache = \"16MiB\"\n")
            .unwrap();
    assert_eq!(
        c.limits.connections_per_address, 8,
        "never more than the listener"
    );
    assert_eq!(c.limits.ledger_cache, 16 << 20);
    let e = cfg("[limits]\nsessions = 10\nheader_timeout = \"soon\"\nsessions_per_actor = 0\n")
        .unwrap_err();
    assert_eq!(e.len(), 2, "{e:?}");
    assert_eq!((e[0].key.as_str(), e[0].line), ("limits.header_timeout", 3));
    assert_eq!(
        (e[1].key.as_str(), e[1].line),
        ("limits.sessions_per_actor", 4)
    );
    assert!(e[1].message.contains("at least 1"), "{}", e[1].message);
}

#[test]
fn a_channel_names_where_it_posts_once_and_a_secret_only_when_it_signs() {
    let ch = |body: &str| cfg(&format!("[[channel]]\nname = \"ops\"\n{body}"));
    let ok = ch("kind = \"webhook\"\nurl = \"https://h/x\"\nsecret_env = \"S\"\n").unwrap();
    assert_eq!(ok.channels[0].reference(), "webhook:ops");
    assert_eq!(ok.channels[0].line, 1);
    let slack = ch("kind = \"slack\"\nurl_env = \"SLACK_URL\"\n").unwrap();
    assert_eq!(
        slack.channels[0].url,
        super::channel::UrlSource::Env("SLACK_URL".into())
    );
    let keys = |body: &str| -> Vec<String> {
        ch(body)
            .unwrap_err()
            .into_iter()
            .map(|d| format!("{}@{}", d.key, d.line))
            .collect()
    };
    assert_eq!(
        keys("kind = \"webhook\"\nurl = \"https://h/x\"\n"),
        ["channel[0].secret_env@1"]
    );
    assert_eq!(
        keys("kind = \"teams\"\nurl = \"https://h/x\"\nsecret_env = \"S\"\n"),
        ["channel[0].secret_env@1"]
    );
    assert_eq!(
        keys("kind = \"slack\"\nurl = \"https://h/x\"\nurl_env = \"U\"\n"),
        ["channel[0].url@1"]
    );
    assert_eq!(keys("kind = \"slack\"\n"), ["channel[0].url@1"]);
    assert_eq!(
        keys("kind = \"slack\"\nurl = \"ftp://h\"\n"),
        ["channel[0].url@1"]
    );
    assert!(
        ch("kind = \"pager\"\nurl = \"https://h\"\n").is_err(),
        "an unknown kind"
    );
}
