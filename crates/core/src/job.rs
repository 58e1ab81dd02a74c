//! What a job worker (or an apply helper) is asked to do, written into the 128 bytes PostgreSQL
//! gives a dynamic background worker (`bgw_extra`) and read back by the job
//! worker. One variant per kind of job, each with its own fields; the session
//! settings the job must follow travel beside it.

/// Room in `bgw_extra` (BGW_EXTRALEN), less the terminating NUL.
pub const MAX_LEN: usize = 127;

/// A job, as its worker needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// `backfill(object, created_after, account)`, followed by its caller through `token`.
    Backfill { object: String, created_after: Option<i64>, token: String, account: Option<String> },
    /// `catch_up(account)` of one account.
    CatchUp { token: String, account: Option<String> },
    /// `verify(object, account, repair)`.
    Verify { object: String, repair: bool, token: String, account: Option<String> },
    /// A helper paging slices of the backfill run `run` beside its leader (a pid).
    Slices { object: String, run: i64, leader: i32, account: Option<String> },
    /// The worker's own catch-up of every known account (no caller).
    CatchUpAll,
    /// The worker's re-reads, until none is left (no caller).
    Refresh,
    /// An apply helper draining share `share` of `of` of the queue beside the
    /// worker (helpers.rs); not a job worker, but started the same way.
    Apply { share: i32, of: i32 },
}

/// A job and the session settings it runs with (`config::session_settings`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub job: Job,
    pub settings: String,
}

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or_default()
}

fn some(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

impl Spec {
    /// The text for `bgw_extra`: tab-separated, kind first, settings last.
    /// Refuses what would not fit or could not be read back.
    pub fn encode(&self) -> Result<String, String> {
        let fields: Vec<String> = match &self.job {
            Job::Backfill { object, created_after, token, account } => vec![
                "backfill".into(),
                object.clone(),
                created_after.map(|t| t.to_string()).unwrap_or_default(),
                token.clone(),
                opt(account).into(),
            ],
            Job::CatchUp { token, account } => {
                vec!["catch_up".into(), token.clone(), opt(account).into()]
            }
            Job::Verify { object, repair, token, account } => vec![
                "verify".into(),
                object.clone(),
                if *repair { "repair" } else { "" }.into(),
                token.clone(),
                opt(account).into(),
            ],
            Job::Slices { object, run, leader, account } => vec![
                "slices".into(),
                object.clone(),
                run.to_string(),
                leader.to_string(),
                opt(account).into(),
            ],
            Job::CatchUpAll => vec!["catch_up_all".into()],
            Job::Refresh => vec!["refresh".into()],
            Job::Apply { share, of } => vec!["apply".into(), share.to_string(), of.to_string()],
        };
        if fields.iter().chain([&self.settings]).any(|f| f.contains(['\t', '\0'])) {
            return Err("a job field holds a tab or NUL".into());
        }
        let text = format!("{}\t{}", fields.join("\t"), self.settings);
        if text.len() > MAX_LEN {
            return Err(format!(
                "the job description is {} bytes; bgw_extra holds {MAX_LEN}",
                text.len()
            ));
        }
        Ok(text)
    }

    /// Reads what [`Spec::encode`] wrote.
    pub fn decode(text: &str) -> Result<Spec, String> {
        let f: Vec<&str> = text.split('\t').collect();
        let bad = || format!("malformed job description ({} fields)", f.len());
        let (fields, settings) = f.split_at(f.len().checked_sub(1).ok_or_else(bad)?);
        let settings = settings[0].to_owned();
        let int = |s: &str| s.parse::<i64>().map_err(|_| bad());
        let int32 = |s: &str| s.parse::<i32>().map_err(|_| bad());
        let job = match fields {
            ["backfill", object, created, token, account] => Job::Backfill {
                object: (*object).into(),
                created_after: if created.is_empty() { None } else { Some(int(created)?) },
                token: (*token).into(),
                account: some(account),
            },
            ["catch_up", token, account] => {
                Job::CatchUp { token: (*token).into(), account: some(account) }
            }
            ["verify", object, repair, token, account] => Job::Verify {
                object: (*object).into(),
                repair: *repair == "repair",
                token: (*token).into(),
                account: some(account),
            },
            ["slices", object, run, leader, account] => Job::Slices {
                object: (*object).into(),
                run: int(run)?,
                leader: int32(leader)?,
                account: some(account),
            },
            ["catch_up_all"] => Job::CatchUpAll,
            ["refresh"] => Job::Refresh,
            ["apply", share, of] => Job::Apply { share: int32(share)?, of: int32(of)? },
            _ => return Err(bad()),
        };
        Ok(Spec { job, settings })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(job: Job) {
        let spec = Spec { job, settings: "5,30000,5000,1".into() };
        let text = spec.encode().unwrap();
        assert!(text.len() <= MAX_LEN, "{text}");
        assert_eq!(Spec::decode(&text).unwrap(), spec, "{text}");
    }

    #[test]
    fn every_job_reads_back_as_written() {
        let token = "0123456789abcdef".to_owned();
        let acct = Some("acct_1Nv0FGQ9RKHgCVdKabcdefghijklmn".to_owned());
        round_trip(Job::Backfill {
            object: "radar.early_fraud_warning".into(),
            created_after: Some(1_700_000_000),
            token: token.clone(),
            account: acct.clone(),
        });
        round_trip(Job::Backfill {
            object: "customer".into(),
            created_after: None,
            token: token.clone(),
            account: None,
        });
        round_trip(Job::CatchUp { token: token.clone(), account: acct.clone() });
        round_trip(Job::CatchUp { token: token.clone(), account: None });
        for repair in [false, true] {
            round_trip(Job::Verify {
                object: "invoice".into(),
                repair,
                token: token.clone(),
                account: acct.clone(),
            });
        }
        round_trip(Job::Slices { object: "invoice".into(), run: 42, leader: 31337, account: None });
        round_trip(Job::CatchUpAll);
        round_trip(Job::Refresh);
        round_trip(Job::Apply { share: 3, of: 4 });
    }

    #[test]
    fn what_does_not_fit_or_cannot_be_read_back_is_refused() {
        let long = Spec {
            job: Job::CatchUp { token: "t".repeat(120), account: None },
            settings: String::new(),
        };
        assert!(long.encode().unwrap_err().contains("bgw_extra holds 127"));
        let tab = Spec {
            job: Job::CatchUp { token: "a\tb".into(), account: None },
            settings: String::new(),
        };
        assert!(tab.encode().is_err());
        for bad in [
            "",
            "backfill",
            "backfill\tcustomer\tx\tt\t\ts",
            "slices\tinvoice\t1\tnope\t\ts",
            "apply\t1\ts",
            "apply\t1\t99999999999\ts",
            "nope\ts",
        ] {
            assert!(Spec::decode(bad).is_err(), "{bad:?}");
        }
    }
}
