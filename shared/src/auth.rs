//! Who is calling and what they may see.
//!
//! Authentication happens at the edge: the HttpApi JWT authorizer (in AWS) or the local stack (the
//! same checks: signature, `exp`/`nbf`, `iss`, `aud`) verifies the token and puts its claims in the
//! request context. Authorization happens here, in the function, from three claims:
//! - `role`: `site_staff` (uploads, enters clinical data, reads its own sites), `monitor` (reads
//!   its own sites), `sponsor_admin` (reads every site of its trials), `patient` (a trial subject
//!   on the ePRO app: its own diary only, named by the `subject` claim);
//! - `sites`: the sites the caller works for, `"SITE-1,SITE-2"` or the authorizer's rendering of a
//!   JSON array claim, `"[SITE-1 SITE-2]"`;
//! - `trials`: the trials the caller works on, in the same forms. A sponsor admin sees only these
//!   (no claim: none); for site staff and monitors, when present, it narrows their sites further.
//!
//! These claims decide what a caller sees, so they must come from what users cannot edit: the
//! identity provider's groups or a token-generation hook (Cognito groups or a pre-token-generation
//! trigger, Entra ID app roles), never user-writable profile attributes (a Cognito custom attribute
//! a user may update, for instance).
//!
//! Site scoping does not leak existence: a subject or upload at a site the caller cannot see answers
//! 404, exactly as one that does not exist. A caller whose role does not allow the action at all gets 403.

use crate::domain::{SiteId, SubjectId, TrialId};
use crate::problem::Problem;
use std::collections::{BTreeSet, HashMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    SiteStaff,
    Monitor,
    SponsorAdmin,
    /// A subject on the ePRO app: may submit and read its own diary, nothing else.
    Patient,
}

impl Role {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "site_staff" => Some(Self::SiteStaff),
            "monitor" => Some(Self::Monitor),
            "sponsor_admin" => Some(Self::SponsorAdmin),
            "patient" => Some(Self::Patient),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SiteStaff => "site_staff",
            Self::Monitor => "monitor",
            Self::SponsorAdmin => "sponsor_admin",
            Self::Patient => "patient",
        }
    }
}

/// The authenticated caller, from the verified token's claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's `sub`: who the audit trail names.
    pub user: String,
    pub role: Role,
    pub sites: BTreeSet<SiteId>,
    /// The `trials` claim; `None` when the token has none.
    pub trials: Option<BTreeSet<TrialId>>,
    /// The `subject` claim of a patient's token: the one subject whose diary it may use. Read for
    /// the patient role only (another role's `subject` claim grants nothing).
    pub subject: Option<SubjectId>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no verified claims in the request context")]
    Unauthenticated,
    #[error("the token names no role this service knows")]
    UnknownRole,
    #[error("a patient's token names no valid subject")]
    PatientWithoutSubject,
}

impl From<AuthError> for Problem {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthenticated => Problem::unauthorized(),
            AuthError::UnknownRole => Problem::forbidden("Your role does not allow this action."),
            AuthError::PatientWithoutSubject => {
                Problem::forbidden("Your token names no subject whose diary you keep.")
            }
        }
    }
}

impl Caller {
    /// Reads the caller from the authorizer's claims (API Gateway hands every claim over as a string).
    pub fn from_claims(claims: &HashMap<String, String>) -> Result<Self, AuthError> {
        let user = claims
            .get("sub")
            .filter(|s| !s.is_empty())
            .ok_or(AuthError::Unauthenticated)?
            .clone();
        let role = claims.get("role").ok_or(AuthError::UnknownRole)?;
        let role = Role::parse(role).ok_or(AuthError::UnknownRole)?;
        let sites = claims
            .get("sites")
            .map(|raw| parse_list(raw, SiteId::parse))
            .unwrap_or_default();
        let trials = claims
            .get("trials")
            .map(|raw| parse_list(raw, TrialId::parse));
        let subject = match role {
            Role::Patient => Some(
                claims
                    .get("subject")
                    .and_then(|raw| SubjectId::parse(raw).ok())
                    .ok_or(AuthError::PatientWithoutSubject)?,
            ),
            _ => None,
        };
        Ok(Self {
            user,
            role,
            sites,
            trials,
            subject,
        })
    }

    /// Reads the caller from a lambda_http request's API Gateway v2 request context.
    pub fn from_request(request: &lambda_http::Request) -> Result<Self, AuthError> {
        use lambda_http::request::RequestContext;
        use lambda_http::RequestExt;
        match request.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(ctx)) => ctx
                .authorizer
                .as_ref()
                .and_then(|a| a.jwt.as_ref())
                .map(|jwt| Self::from_claims(&jwt.claims))
                .unwrap_or(Err(AuthError::Unauthenticated)),
            _ => Err(AuthError::Unauthenticated),
        }
    }

    /// Is `trial` among the caller's trials? Without a `trials` claim, only site roles pass.
    fn works_on(&self, trial: &TrialId) -> bool {
        match &self.trials {
            Some(trials) => trials.contains(trial),
            None => self.role != Role::SponsorAdmin,
        }
    }

    /// May the caller read data of a subject of `trial` at `site`?
    pub fn can_read(&self, trial: &TrialId, site: &SiteId) -> bool {
        self.works_on(trial)
            && match self.role {
                Role::SponsorAdmin => true,
                Role::SiteStaff | Role::Monitor => self.sites.contains(site),
                Role::Patient => false,
            }
    }

    /// May the caller enter clinical data (enrol, forms, ePRO on a subject's behalf) at `site` of
    /// `trial`? Only site staff of that site, as for uploads.
    pub fn can_enter_data(&self, trial: &TrialId, site: &SiteId) -> bool {
        self.can_upload(trial, site)
    }

    /// Is the caller the patient `subject` (a patient's token naming that subject)?
    pub fn is_patient(&self, subject: &SubjectId) -> bool {
        self.role == Role::Patient && self.subject.as_ref() == Some(subject)
    }

    /// May the caller upload imaging for a subject of `trial` at `site`? Only site staff of that site.
    pub fn can_upload(&self, trial: &TrialId, site: &SiteId) -> bool {
        self.role == Role::SiteStaff && self.works_on(trial) && self.sites.contains(site)
    }
}

/// `"A,B"`, `"A B"` and the authorizer's rendering of an array claim, `"[A B]"`. Entries that are not
/// valid ids are dropped: they could never match a subject's site or trial.
fn parse_list<T: Ord>(raw: &str, parse: impl Fn(&str) -> Result<T, String>) -> BTreeSet<T> {
    raw.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(|c: char| c == ',' || c.is_whitespace())
        .map(|s| s.trim_matches('"'))
        .filter(|s| !s.is_empty())
        .filter_map(|s| parse(s).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn site(s: &str) -> SiteId {
        SiteId::parse(s).unwrap()
    }

    fn trial(s: &str) -> TrialId {
        TrialId::parse(s).unwrap()
    }

    #[test]
    fn reads_role_and_every_rendering_of_sites() {
        for raw in [
            "SITE-1,SITE-2",
            "[SITE-1 SITE-2]",
            " SITE-1  SITE-2 ",
            "[\"SITE-1\",\"SITE-2\"]",
        ] {
            let c = Caller::from_claims(&claims(&[
                ("sub", "u1"),
                ("role", "monitor"),
                ("sites", raw),
            ]))
            .unwrap();
            assert_eq!(c.role, Role::Monitor);
            assert_eq!(c.sites.len(), 2, "{raw}");
            assert!(c.can_read(&trial("T1"), &site("SITE-2")));
            assert!(!c.can_read(&trial("T1"), &site("SITE-3")));
            assert!(!c.can_upload(&trial("T1"), &site("SITE-1")));
        }
    }

    #[test]
    fn missing_sub_is_unauthenticated_and_unknown_role_forbidden() {
        assert_eq!(
            Caller::from_claims(&claims(&[("role", "monitor")])),
            Err(AuthError::Unauthenticated)
        );
        assert_eq!(
            Caller::from_claims(&claims(&[("sub", "u"), ("role", "root")])),
            Err(AuthError::UnknownRole)
        );
        assert_eq!(
            Caller::from_claims(&claims(&[("sub", "u")])),
            Err(AuthError::UnknownRole)
        );
    }

    #[test]
    fn scoping_by_role_and_trial() {
        let admin = |trials: Option<&str>| {
            let mut c = vec![("sub", "a"), ("role", "sponsor_admin")];
            if let Some(t) = trials {
                c.push(("trials", t));
            }
            Caller::from_claims(&claims(&c)).unwrap()
        };
        // A sponsor admin reads every site of its trials, and no other trial; without the claim, none.
        assert!(admin(Some("[T1 T2]")).can_read(&trial("T2"), &site("ANY")));
        assert!(!admin(Some("T1")).can_read(&trial("T3"), &site("ANY")));
        assert!(!admin(None).can_read(&trial("T1"), &site("ANY")));
        assert!(!admin(Some("T1")).can_upload(&trial("T1"), &site("ANY")));
        let staff = |trials: Option<&str>| {
            let mut c = vec![("sub", "s"), ("role", "site_staff"), ("sites", "S1")];
            if let Some(t) = trials {
                c.push(("trials", t));
            }
            Caller::from_claims(&claims(&c)).unwrap()
        };
        assert!(staff(None).can_upload(&trial("T1"), &site("S1")));
        assert!(!staff(None).can_upload(&trial("T1"), &site("S2")));
        // A trials claim narrows site roles too.
        assert!(staff(Some("T1")).can_read(&trial("T1"), &site("S1")));
        assert!(!staff(Some("T1")).can_read(&trial("T2"), &site("S1")));
        assert!(!staff(Some("T1")).can_upload(&trial("T2"), &site("S1")));
    }

    #[test]
    fn a_patient_keeps_its_own_diary_only() {
        let p = Caller::from_claims(&claims(&[
            ("sub", "p1"),
            ("role", "patient"),
            ("subject", "SUBJ-0001"),
            ("sites", "S1"),
            ("trials", "T1"),
        ]))
        .unwrap();
        let own = SubjectId::parse("SUBJ-0001").unwrap();
        assert!(p.is_patient(&own));
        assert!(!p.is_patient(&SubjectId::parse("SUBJ-0002").unwrap()));
        // Its sites and trials claims grant it nothing else.
        assert!(!p.can_read(&trial("T1"), &site("S1")));
        assert!(!p.can_enter_data(&trial("T1"), &site("S1")));
        assert_eq!(
            Caller::from_claims(&claims(&[("sub", "p"), ("role", "patient")])),
            Err(AuthError::PatientWithoutSubject)
        );
        assert_eq!(
            Caller::from_claims(&claims(&[
                ("sub", "p"),
                ("role", "patient"),
                ("subject", "../x")
            ])),
            Err(AuthError::PatientWithoutSubject)
        );
        // Another role's subject claim is ignored.
        let m = Caller::from_claims(&claims(&[
            ("sub", "m"),
            ("role", "monitor"),
            ("subject", "SUBJ-0001"),
        ]))
        .unwrap();
        assert!(!m.is_patient(&own));
    }
}
