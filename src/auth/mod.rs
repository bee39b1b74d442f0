//! Who may decide: the checks a decider passes beyond holding a valid link — signing in with the
//! company's OpenID provider ([`oidc`], [`pending`], [`session`]) and giving a TOTP code
//! ([`totp`]) — and the facts a decision row records about how its decider was authenticated.
//!
//! One small interface for every page that decides: [`Deciders::may_decide`] answers "may this
//! request decide decision X as EMAIL, given requirement R?" with the [`Facts`] to record or a
//! [`Refused`] sentence that says what to do. Decisions are named by a plain id (an approval id;
//! `review:<email>`, `pause:<call>`, `held:<call>`, `classify:<server>/<tool>` on the review side)
//! and an address, never by approval internals. This module must never decide anything
//! itself, write the ledger (its callers record refusals), or accept a person the provider did
//! not verify as the link's address.

pub mod oidc;
pub mod pending;
pub mod session;
pub mod totp;

use std::path::Path;
use std::sync::Mutex;

use openidconnect::core::CoreProviderMetadata;
use serde::Serialize;

use crate::approval::link::LinkKey;
use crate::config::sign_in::SignInConfig;
use crate::policy::{Requirement, SecondFactor, SignIn};
use pending::{Login, Logins, NoLogin};
use session::{CookieKey, Cookies, Session};

/// The path the provider sends the browser back to (register `<public url>/signin/callback`).
pub const CALLBACK: &str = "/signin/callback";

/// How a decider was authenticated: recorded as `auth` in the decision row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Facts {
    /// `link` (the mailed link alone) or `oidc` (signed in as the link's address).
    pub via: Via,
    /// `totp` when a code was given with the decision.
    pub second_factor: Option<SecondFactor>,
    /// The provider's subject (`sub`) and issuer, when signed in.
    pub subject: Option<String>,
    pub issuer: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    Link,
    Oidc,
}

/// Which check refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    SignIn,
    SecondFactor,
}

impl Step {
    /// The `attempt` word of its ledger row.
    pub fn word(self) -> &'static str {
        match self {
            Step::SignIn => "sign_in",
            Step::SecondFactor => "second_factor",
        }
    }
}

/// A refusal: a title and a sentence that says what to do, and the reason for the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub step: Step,
    pub title: &'static str,
    pub sentence: String,
    pub reason: String,
}

impl Refused {
    fn sign_in(title: &'static str, reason: impl Into<String>, todo: &str) -> Refused {
        let reason = reason.into();
        Refused {
            step: Step::SignIn,
            title,
            sentence: format!("{}: {todo}", capitalized(&reason)),
            reason,
        }
    }
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// What a decision request presents: its `Cookie` header and the code typed into the form.
#[derive(Debug, Clone, Copy, Default)]
pub struct Presented<'a> {
    pub cookies: &'a str,
    pub code: &'a str,
}

/// Where to send the browser to sign in, and the cookie that ties the sign-in to it.
#[derive(Debug)]
pub struct Redirect {
    pub location: String,
    pub set_cookie: String,
}

/// A finished sign-in: back to the page, with a session for that one decision.
#[derive(Debug)]
pub struct Finished {
    pub return_to: String,
    pub set_cookies: Vec<String>,
}

/// A failed callback: the refusal, and the decision and address it was for, when known.
#[derive(Debug)]
pub struct Failed {
    pub about: Option<(String, String)>,
    pub refused: Refused,
    pub clear_cookie: String,
}

/// The provider's answer on the callback URL.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Callback {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub state: String,
    pub error: Option<String>,
    pub iss: Option<String>,
}

/// The checks, with their state: sign-ins under way, the cookie key, the TOTP store.
pub struct Deciders {
    provider: Option<oidc::Provider>,
    issuer: String,
    logins: Mutex<Logins<CoreProviderMetadata>>,
    cookies: Cookies,
    session_secs: i64,
    totp: totp::Store,
}

impl std::fmt::Debug for Deciders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deciders")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

impl Deciders {
    /// The checks of a gate whose pages are at `base_url` (cookies are `Secure` when it is
    /// https), with its link key (file at `key_path`, beside which the TOTP files live).
    pub fn new(
        sign_in: Option<&SignInConfig>,
        key: &LinkKey,
        key_path: &Path,
        base_url: &str,
    ) -> Result<Deciders, String> {
        let base = base_url.trim_end_matches('/');
        let provider = sign_in
            .map(|c| oidc::Provider::new(c, &format!("{base}{CALLBACK}")))
            .transpose()?;
        Ok(Deciders {
            provider,
            issuer: sign_in.map(|c| c.issuer.clone()).unwrap_or_default(),
            logins: Mutex::new(Logins::default()),
            cookies: Cookies::new(CookieKey::derive(key), base.starts_with("https://")),
            session_secs: sign_in.map_or(0, |c| i64::try_from(c.session.as_secs()).unwrap_or(900)),
            totp: totp::Store::open(key_path)?,
        })
    }

    /// The session that lets `email` decide `decision` now, if this request carries one.
    pub fn signed_in(
        &self,
        cookies: &str,
        decision: &str,
        email: &str,
        now: i64,
    ) -> Option<Session> {
        self.cookies.read_session(cookies, decision, email, now)
    }

    /// Start signing `email` in to decide `decision`; the page is at `return_to`, the session
    /// will be limited to `cookie_path`. Blocking (asks the provider for its metadata).
    pub fn begin(
        &self,
        decision: &str,
        email: &str,
        return_to: &str,
        cookie_path: &str,
        now: i64,
    ) -> Result<Redirect, Refused> {
        let provider = self.provider.as_ref().ok_or_else(not_configured)?;
        let started = provider.start().map_err(|e| {
            Refused::sign_in(
                "Sign-in unavailable",
                e.to_string(),
                "try again in a minute; the request waits until it expires",
            )
        })?;
        let set_cookie = self
            .cookies
            .signing_in(&started.state, CALLBACK, pending::LOGIN_TTL);
        self.logins.lock().unwrap_or_else(|e| e.into_inner()).start(
            Login {
                state: started.state,
                pkce_verifier: started.pkce_verifier,
                nonce: started.nonce,
                decision: decision.to_string(),
                email: email.to_ascii_lowercase(),
                return_to: return_to.to_string(),
                cookie_path: cookie_path.to_string(),
                started: now,
                meta: started.meta,
            },
            now,
        );
        Ok(Redirect {
            location: started.url,
            set_cookie,
        })
    }

    /// Finish a sign-in on the callback. Blocking (the code exchange).
    pub fn finish(&self, cb: &Callback, cookies: &str, now: i64) -> Result<Finished, Box<Failed>> {
        let clear = self.cookies.clear_signing_in(CALLBACK);
        let fail = |about: Option<&Login<_>>, refused: Refused| {
            Box::new(Failed {
                about: about.map(|l| (l.decision.clone(), l.email.clone())),
                refused,
                clear_cookie: clear.clone(),
            })
        };
        let again = "open the link from your email again and sign in";
        let browser = self.cookies.read_signing_in(cookies);
        let redeemed = self
            .logins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .redeem(&cb.state, browser.as_deref(), now);
        let login = match redeemed {
            Ok(l) => l,
            Err(NoLogin::Unknown) => {
                return Err(fail(
                    None,
                    Refused::sign_in(
                        "Sign-in not valid",
                        "this sign-in is unknown, already used, or was dropped",
                        again,
                    ),
                ));
            }
            Err(NoLogin::Mismatch(l)) => {
                return Err(fail(
                    Some(&l),
                    Refused::sign_in(
                        "Sign-in refused",
                        "the sign-in's state does not match the one this browser started with (tampered, replayed or from another browser)",
                        &format!("{again}, in this browser"),
                    ),
                ));
            }
            Err(NoLogin::Expired(l)) => {
                return Err(fail(
                    Some(&l),
                    Refused::sign_in(
                        "Sign-in too slow",
                        format!(
                            "the sign-in took longer than {} minutes",
                            pending::LOGIN_TTL / 60
                        ),
                        again,
                    ),
                ));
            }
        };
        let todo = format!("{again} as {}; nothing was decided", login.email);
        if let Some(err) = &cb.error {
            return Err(fail(
                Some(&login),
                Refused::sign_in(
                    "Not signed in",
                    format!("the provider did not sign you in ({err})"),
                    &todo,
                ),
            ));
        }
        if cb
            .iss
            .as_deref()
            .is_some_and(|iss| iss.trim_end_matches('/') != self.issuer)
        {
            return Err(fail(
                Some(&login),
                Refused::sign_in(
                    "Sign-in refused",
                    "the answer came from another issuer than the configured provider",
                    &todo,
                ),
            ));
        }
        let provider = self
            .provider
            .as_ref()
            .ok_or_else(|| fail(Some(&login), not_configured()))?;
        let who = provider
            .finish(&login.meta, &cb.code, &login.pkce_verifier, &login.nonce)
            .map_err(|e| {
                fail(
                    Some(&login),
                    Refused::sign_in("Sign-in failed", e.to_string(), &todo),
                )
            })?;
        if who.email != login.email {
            let reason = format!(
                "signed in as {} (subject {}), but the link is for {}",
                who.email, who.subject, login.email
            );
            let todo = format!(
                "sign out of your provider, then {again} as {}; nothing was decided",
                login.email
            );
            return Err(fail(
                Some(&login),
                Refused::sign_in("Signed in as someone else", reason, &todo),
            ));
        }
        let s = Session {
            decision: login.decision.clone(),
            email: login.email.clone(),
            subject: who.subject,
            issuer: who.issuer,
            expires: now + self.session_secs,
        };
        Ok(Finished {
            return_to: login.return_to.clone(),
            set_cookies: vec![self.cookies.session(&s, &login.cookie_path, now), clear],
        })
    }

    /// May this request decide `decision` as `email`, given `need`? The facts to record, or a
    /// refusal. A TOTP code is spent (durably) here, before the caller commits the decision.
    /// Blocking (the TOTP state file).
    pub fn may_decide(
        &self,
        p: Presented<'_>,
        decision: &str,
        email: &str,
        need: Requirement,
        now: i64,
    ) -> Result<Facts, Refused> {
        self.may_decide_within(p, decision, decision, email, need, now)
    }

    /// As [`Deciders::may_decide`], on a page where one sign-in covers several decisions (the
    /// review page): the session must be for `scope`, the code is spent on `decision` (a
    /// lockout bars that one decision, not the page). Blocking.
    pub fn may_decide_within(
        &self,
        p: Presented<'_>,
        scope: &str,
        decision: &str,
        email: &str,
        need: Requirement,
        now: i64,
    ) -> Result<Facts, Refused> {
        let mut facts = Facts {
            via: Via::Link,
            second_factor: None,
            subject: None,
            issuer: None,
        };
        if need.sign_in == SignIn::Oidc {
            if self.provider.is_none() {
                return Err(not_configured());
            }
            let s = self.signed_in(p.cookies, scope, email, now).ok_or_else(|| {
                Refused::sign_in("Sign in first", format!("this browser is not signed in as {email} for this request, or the sign-in expired"), "open the link from your email again and sign in; nothing was decided")
            })?;
            facts.via = Via::Oidc;
            facts.subject = Some(s.subject);
            facts.issuer = Some(s.issuer);
        }
        if let Some(SecondFactor::Totp) = need.second_factor {
            self.totp
                .verify(decision, email, p.code, now)
                .map_err(|r| Refused {
                    step: Step::SecondFactor,
                    title: if r == totp::Refusal::Locked {
                        "Locked out"
                    } else {
                        "Code not accepted"
                    },
                    sentence: format!("{}; nothing was decided.", capitalized(&r.to_string())),
                    reason: r.to_string(),
                })?;
            facts.second_factor = Some(SecondFactor::Totp);
        }
        Ok(facts)
    }
}

fn not_configured() -> Refused {
    Refused::sign_in(
        "Sign-in not configured",
        "this role must sign in, but this Airlock has no [sign_in] provider",
        "tell the operator; nothing was decided",
    )
}
