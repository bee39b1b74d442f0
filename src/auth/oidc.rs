//! The company's OpenID provider, through the `openidconnect` crate: discovery (endpoints and
//! signing keys), the authorization URL (code flow, PKCE S256, `state`, `nonce`), and the code
//! exchange whose ID token is verified (signature by the provider's JWKS, issuer, audience,
//! expiry, nonce). Its HTTP goes through a ureq agent that follows no redirects.
//!
//! Blocking I/O: call it off the async runtime's threads. It must never accept an identity whose
//! email the provider did not mark verified, and never parse or check a JWT by hand.

use std::time::Duration;

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};

use crate::config::sign_in::SignInConfig;

/// Why a sign-in could not be finished (each a sentence for the page and the ledger).
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("the sign-in provider could not be reached ({0})")]
    Unreachable(String),
    #[error("the sign-in provider refused: {0}")]
    Refused(String),
    #[error("the ID token was not accepted: {0}")]
    BadToken(String),
    #[error("the provider did not say which email address you signed in with")]
    NoEmail,
    #[error("the provider has not verified the address {0}")]
    Unverified(String),
}

/// Who the provider says signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The verified email address, lower-cased.
    pub email: String,
    pub subject: String,
    pub issuer: String,
}

/// A sign-in just started: where to send the browser, and what the callback needs.
pub struct Started {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub meta: CoreProviderMetadata,
}

/// The configured provider and Airlock's client there.
pub struct Provider {
    issuer: IssuerUrl,
    client_id: ClientId,
    secret: Option<ClientSecret>,
    redirect: RedirectUrl,
    http: ureq::Agent,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("issuer", &self.issuer.as_str())
            .field("client_id", &self.client_id.as_str())
            .finish_non_exhaustive()
    }
}

/// A client built from discovered metadata: authorization endpoint set, token and userinfo
/// endpoints as the provider gave them.
type Client = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

impl Provider {
    /// The provider of `[sign_in]`; `redirect` is `<public url>/signin/callback`. Reads the client
    /// secret from its environment variable (an error when it is named but unset).
    pub fn new(cfg: &SignInConfig, redirect: &str) -> Result<Provider, String> {
        let secret = match &cfg.client_secret_env {
            None => None,
            Some(var) => Some(ClientSecret::new(std::env::var(var).map_err(|_| {
                format!("[sign_in] client_secret_env names `{var}`, which is not set: export the client secret in it")
            })?)),
        };
        let http = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        Ok(Provider {
            issuer: IssuerUrl::new(cfg.issuer.clone())
                .map_err(|e| format!("[sign_in] issuer: {e}"))?,
            client_id: ClientId::new(cfg.client_id.clone()),
            secret,
            redirect: RedirectUrl::new(redirect.to_string())
                .map_err(|e| format!("sign-in redirect URI {redirect}: {e}"))?,
            http,
        })
    }

    fn send(
        &self,
        req: openidconnect::HttpRequest,
    ) -> Result<openidconnect::HttpResponse, HttpError> {
        let resp = self.http.run(req).map_err(|e| HttpError(e.to_string()))?;
        let (parts, body) = resp.into_parts();
        let bytes = body
            .into_with_config()
            .limit(1 << 20)
            .read_to_vec()
            .map_err(|e| HttpError(e.to_string()))?;
        Ok(openidconnect::http::Response::from_parts(parts, bytes))
    }

    fn client(&self, meta: &CoreProviderMetadata) -> Client {
        CoreClient::from_provider_metadata(
            meta.clone(),
            self.client_id.clone(),
            self.secret.clone(),
        )
        .set_redirect_uri(self.redirect.clone())
    }

    /// Discover the provider and build the URL that starts a sign-in (scopes `openid email`).
    pub fn start(&self) -> Result<Started, SignInError> {
        let http = |r| self.send(r);
        let meta = CoreProviderMetadata::discover(&self.issuer, &http)
            .map_err(|e| SignInError::Unreachable(error_chain(&e)))?;
        let client = self.client(&meta);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".into()))
            .set_pkce_challenge(challenge)
            .url();
        Ok(Started {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            meta,
        })
    }

    /// Exchange the code (with the PKCE verifier) and verify the ID token against the keys and
    /// issuer discovered at the start and the nonce the sign-in was started with.
    pub fn finish(
        &self,
        meta: &CoreProviderMetadata,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<Identity, SignInError> {
        let client = self.client(meta);
        let http = |r| self.send(r);
        let tokens = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| SignInError::Refused(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
            .request(&http)
            .map_err(|e| SignInError::Refused(error_chain(&e)))?;
        let token = tokens
            .id_token()
            .ok_or_else(|| SignInError::BadToken("the provider sent no ID token".into()))?;
        let claims = token
            .claims(&client.id_token_verifier(), &Nonce::new(nonce.to_string()))
            .map_err(|e| SignInError::BadToken(e.to_string()))?;
        // The email is in the ID token, or (by the spec, for the code flow) only at the
        // userinfo endpoint, asked with the access token for the same subject.
        let (email, verified) = match claims.email() {
            Some(e) => (e.as_str().to_string(), claims.email_verified()),
            None => {
                let info: CoreUserInfoClaims = client
                    .user_info(
                        tokens.access_token().clone(),
                        Some(claims.subject().clone()),
                    )
                    .map_err(|_| SignInError::NoEmail)?
                    .request(&http)
                    .map_err(|e| SignInError::Refused(format!("userinfo: {}", error_chain(&e))))?;
                let email = info.email().ok_or(SignInError::NoEmail)?;
                (email.as_str().to_string(), info.email_verified())
            }
        };
        let email = email.to_ascii_lowercase();
        if verified != Some(true) {
            return Err(SignInError::Unverified(email));
        }
        Ok(Identity {
            email,
            subject: claims.subject().as_str().to_string(),
            issuer: claims.issuer().as_str().to_string(),
        })
    }
}

/// An error with its sources, in one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
