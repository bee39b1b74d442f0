//! One case per rule, in the order the rule applies them.

use std::collections::BTreeMap;

use super::{AgentIds, Matter, Refusal, authorize, deciders, same_identity};
use crate::policy::{Policy, Role, SignIn};

fn policy(review: Option<&str>) -> Policy {
    let role = |emails: &[&str]| Role {
        emails: emails.iter().map(|e| e.to_string()).collect(),
        escalate_to: None,
        sign_in: SignIn::Link,
        second_factor: None,
        reveal_redacted: false,
        channels: Vec::new(),
    };
    Policy {
        version: "t".into(),
        classes: BTreeMap::new(),
        roles: [
            (
                "finance".to_string(),
                role(&["ann@example.com", "cfo@example.com"]),
            ),
            ("cfo".to_string(), role(&["cfo@example.com"])),
            (
                "ops".to_string(),
                role(&["ops@example.com", "bot@example.com"]),
            ),
        ]
        .into(),
        actors: BTreeMap::new(),
        review_role: review.map(str::to_string),
        refused_per_minute: crate::policy::REFUSED_PER_MINUTE_DEFAULT,
    }
}

/// (name, matter, decider, review role, what the rule says)
type Case<'a> = (
    &'a str,
    Matter<'a>,
    &'a str,
    Option<&'a str>,
    Result<Vec<&'a str>, Refusal>,
);

const AGENTS: &[&str] = &["agent:default", "bot@example.com"];

fn agents() -> AgentIds<'static> {
    AgentIds::new(AGENTS.iter().copied())
}

#[test]
fn each_rule_in_order() {
    let cfo_and_finance = ["finance".to_string(), "cfo".to_string()];
    let cfo = ["cfo".to_string()];
    let none: [String; 0] = [];
    let approval = Matter::Approval {
        role: "finance",
        requester: "agent:default",
    };
    let cases: Vec<Case<'_>> = vec![
        (
            "a member of the approval's role",
            approval,
            "Ann@Example.com",
            None,
            Ok(vec!["finance"]),
        ),
        (
            "someone outside it",
            approval,
            "ops@example.com",
            None,
            Err(Refusal::NotInRole {
                who: "ops@example.com".into(),
                roles: "finance".into(),
            }),
        ),
        (
            "an agent identity, even in the role",
            Matter::Pause {
                role: Some("ops"),
                requester: None,
            },
            "bot@example.com",
            None,
            Err(Refusal::Agent("bot@example.com".into())),
        ),
        (
            "the requester, even in the role",
            Matter::Held {
                roles: &cfo,
                requester: "cfo@example.com",
            },
            "cfo@example.com",
            None,
            Err(Refusal::Requester("cfo@example.com".into(), "cfo".into())),
        ),
        (
            "a held call over the cfo's threshold, by finance",
            Matter::Held {
                roles: &cfo,
                requester: "agent:default",
            },
            "ann@example.com",
            Some("ops"),
            Err(Refusal::NotInRole {
                who: "ann@example.com".into(),
                roles: "cfo".into(),
            }),
        ),
        (
            "...and by the cfo",
            Matter::Held {
                roles: &cfo,
                requester: "agent:default",
            },
            "cfo@example.com",
            Some("ops"),
            Ok(vec!["cfo"]),
        ),
        (
            "a call held by two roles needs a member of both",
            Matter::Held {
                roles: &cfo_and_finance,
                requester: "x",
            },
            "ann@example.com",
            None,
            Err(Refusal::NotInRole {
                who: "ann@example.com".into(),
                roles: "finance and cfo".into(),
            }),
        ),
        (
            "...which the cfo is",
            Matter::Held {
                roles: &cfo_and_finance,
                requester: "x",
            },
            "cfo@example.com",
            None,
            Ok(vec!["finance", "cfo"]),
        ),
        (
            "a held call naming no role: the review role",
            Matter::Held {
                roles: &none,
                requester: "x",
            },
            "ops@example.com",
            Some("ops"),
            Ok(vec!["ops"]),
        ),
        (
            "...and without one, nobody",
            Matter::Held {
                roles: &none,
                requester: "x",
            },
            "ops@example.com",
            None,
            Err(Refusal::NoRole),
        ),
        (
            "a pause naming no role: the review role",
            Matter::Pause {
                role: None,
                requester: Some("agent:default"),
            },
            "ops@example.com",
            Some("ops"),
            Ok(vec!["ops"]),
        ),
        (
            "classifying: the review role",
            Matter::Classify,
            "ann@example.com",
            Some("ops"),
            Err(Refusal::NotInRole {
                who: "ann@example.com".into(),
                roles: "ops".into(),
            }),
        ),
        (
            "an agent's address with a +tag is the agent",
            Matter::Pause {
                role: Some("ops"),
                requester: None,
            },
            "Bot+ops@Example.com",
            None,
            Err(Refusal::Agent("Bot+ops@Example.com".into())),
        ),
        (
            "the requester with a +tag is the requester",
            Matter::Held {
                roles: &cfo,
                requester: "cfo@example.com",
            },
            "cfo+late@example.com",
            None,
            Err(Refusal::Requester(
                "cfo+late@example.com".into(),
                "cfo".into(),
            )),
        ),
        (
            "a +tag never makes someone a member",
            approval,
            "ann+x@example.com",
            None,
            Err(Refusal::NotInRole {
                who: "ann+x@example.com".into(),
                roles: "finance".into(),
            }),
        ),
        (
            "an agent is refused before anything else",
            Matter::Classify,
            "Agent:Default",
            None,
            Err(Refusal::Agent("Agent:Default".into())),
        ),
    ];
    for (name, matter, who, review, want) in cases {
        let got = authorize(&matter, who, &policy(review), &agents());
        let want = want.map(|r| r.into_iter().map(str::to_string).collect::<Vec<_>>());
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn identities_compare_without_case_or_an_address_tag() {
    for (a, b, same) in [
        ("bot@example.com", "bot@example.com", true),
        ("bot@example.com", " BOT@Example.COM ", true),
        ("bot+ops@example.com", "bot@example.com", true),
        ("bot@example.com", "Bot+Ops@example.com", true),
        ("bot+a@example.com", "bot+b@example.com", true),
        ("bot+a+b@example.com", "bot@example.com", true),
        ("bot@example.com", "bot@example.org", false),
        ("bot@example.com", "robot@example.com", false),
        ("bot+x@example.com", "botx@example.com", false),
        ("agent:default", "Agent:Default", true),
        ("agent:x+y", "agent:x", false),
        ("agent:default", "bot@example.com", false),
    ] {
        assert_eq!(same_identity(a, b), same, "{a} vs {b}");
        assert_eq!(same_identity(b, a), same, "{b} vs {a}");
    }
}

#[test]
fn deciders_are_the_members_who_may_decide() {
    let p = policy(Some("ops"));
    let held = Matter::Held {
        roles: &[],
        requester: "agent:default",
    };
    assert_eq!(
        deciders(&held, &p, &agents()),
        ["ops@example.com"],
        "the agent in ops is left out"
    );
    assert_eq!(
        deciders(
            &held,
            &p,
            &AgentIds::new(["agent:default", "bot+ci@example.com"])
        ),
        ["ops@example.com"],
        "also when the agent is named with a +tag"
    );
    let own = Matter::Approval {
        role: "finance",
        requester: "ann@example.com",
    };
    assert_eq!(
        deciders(&own, &p, &agents()),
        ["cfo@example.com"],
        "the requester is left out"
    );
    assert!(deciders(&Matter::Classify, &policy(None), &agents()).is_empty());
}

#[test]
fn every_refusal_says_what_to_do() {
    for r in [
        Refusal::Agent("a".into()),
        Refusal::Requester("a".into(), "r".into()),
        Refusal::NotInRole {
            who: "a".into(),
            roles: "r".into(),
        },
        Refusal::NoRole,
    ] {
        let said = r.to_string();
        assert!(
            said.contains("must") || said.contains("ask") || said.contains("add"),
            "{said}"
        );
    }
}

#[test]
fn an_oauth_agent_never_decides() {
    let p = policy(Some("ops"));
    let mut oauth_ops = p.clone();
    if let Some(r) = oauth_ops.roles.get_mut("ops") {
        r.emails.push("OAuth:ops@example.com".into());
    }
    let agents = agents().with_prefix("oauth:");
    let got = authorize(
        &Matter::Classify,
        "OAuth:ops@example.com",
        &oauth_ops,
        &agents,
    );
    assert_eq!(got, Err(Refusal::Agent("OAuth:ops@example.com".into())));
    assert_eq!(
        deciders(&Matter::Classify, &oauth_ops, &agents),
        ["ops@example.com"],
        "the bot is an agent too"
    );
    assert!(agents.is_agent(" oauth:x") && !agents.is_agent("oauthx@example.com"));
}
