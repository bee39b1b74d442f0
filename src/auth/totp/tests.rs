use super::{
    MAX_FAILURES, Refusal, Store, Used, check, enroll, secrets_path, tmp_path, totp, used_path,
};

const SECRET: &[u8] = b"12345678901234567890";
const T: i64 = 1_700_000_000;

fn code_at(t: i64) -> String {
    totp(SECRET, "ann@example.com").unwrap().generate(t as u64)
}

#[test]
fn the_current_code_and_one_step_either_side_are_accepted() {
    for offset in [-30, 0, 30] {
        let mut used = Used::default();
        let step = check(
            &mut used,
            SECRET,
            "d1",
            "ann@example.com",
            &code_at(T + offset),
            T,
        );
        assert_eq!(step, Ok(((T + offset) / 30) as u64), "offset {offset}");
    }
    let mut used = Used::default();
    assert_eq!(
        check(
            &mut used,
            SECRET,
            "d1",
            "ann@example.com",
            &code_at(T + 90),
            T
        ),
        Err(Refusal::Wrong {
            left: MAX_FAILURES - 1
        }),
        "three steps ahead is too far"
    );
}

#[test]
fn a_code_is_used_once_and_no_older_code_after_it() {
    let mut used = Used::default();
    assert!(check(&mut used, SECRET, "d1", "ann@example.com", &code_at(T), T).is_ok());
    assert_eq!(
        check(
            &mut used,
            SECRET,
            "d2",
            "Ann@Example.com",
            &code_at(T),
            T + 5
        ),
        Err(Refusal::Reused {
            left: MAX_FAILURES - 1
        }),
        "the same code, even for another decision"
    );
    assert!(matches!(
        check(
            &mut used,
            SECRET,
            "d2",
            "ann@example.com",
            &code_at(T - 30),
            T + 5
        ),
        Err(Refusal::Reused { .. })
    ));
    assert!(
        check(
            &mut used,
            SECRET,
            "d2",
            "ann@example.com",
            &code_at(T + 30),
            T + 30
        )
        .is_ok()
    );
}

#[test]
fn five_wrong_codes_lock_that_approver_out_of_that_decision_only() {
    let mut used = Used::default();
    for left in (1..MAX_FAILURES).rev() {
        assert_eq!(
            check(&mut used, SECRET, "d1", "ann@example.com", "000000", T),
            Err(Refusal::Wrong { left })
        );
    }
    assert_eq!(
        check(&mut used, SECRET, "d1", "ann@example.com", "000000", T),
        Err(Refusal::Locked),
        "the fifth"
    );
    assert_eq!(
        check(&mut used, SECRET, "d1", "ann@example.com", &code_at(T), T),
        Err(Refusal::Locked),
        "even the right code"
    );
    assert!(
        check(&mut used, SECRET, "d2", "ann@example.com", &code_at(T), T).is_ok(),
        "another decision"
    );
    assert!(
        check(
            &mut used,
            SECRET,
            "d1",
            "bob@example.com",
            &totp(SECRET, "bob@example.com")
                .unwrap()
                .generate(T as u64 + 30),
            T + 30
        )
        .is_ok(),
        "another approver"
    );
}

#[test]
fn an_empty_code_is_asked_for_without_counting() {
    let mut used = Used::default();
    for _ in 0..10 {
        assert_eq!(
            check(&mut used, SECRET, "d1", "ann@example.com", " ", T),
            Err(Refusal::Missing)
        );
    }
    assert!(used.failures.is_empty());
}

#[test]
fn old_failure_counts_are_forgotten() {
    let mut used = Used::default();
    let _ = check(&mut used, SECRET, "d1", "ann@example.com", "000000", T);
    let _ = check(
        &mut used,
        SECRET,
        "d2",
        "ann@example.com",
        &code_at(T + 40 * 86_400),
        T + 40 * 86_400,
    );
    assert!(used.failures.is_empty());
}

#[test]
fn enrolment_writes_a_private_file_and_the_store_remembers_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("airlock.key");
    let e = enroll(&key, "Ann@Example.com", false, "now").unwrap();
    assert!(
        e.uri
            .starts_with("otpauth://totp/Airlock:ann%40example.com?"),
        "{}",
        e.uri
    );
    assert_eq!(e.file, secrets_path(&key));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&e.file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(
        enroll(&key, "ann@example.com", false, "now").is_err(),
        "enrolled already"
    );
    let t = totp_rs::TOTP::from_url(&e.uri).unwrap();
    let code = t.generate(T as u64);
    let store = Store::open(&key).unwrap();
    assert!(store.verify("d1", "ann@example.com", &code, T).is_ok());
    assert_eq!(
        store.verify("d1", "bob@example.com", &code, T),
        Err(Refusal::NotEnrolled("bob@example.com".into()))
    );
    for _ in 0..MAX_FAILURES {
        let _ = store.verify("d9", "ann@example.com", "000000", T);
    }
    drop(store);
    let again = Store::open(&key).unwrap();
    assert!(
        matches!(
            again.verify("d2", "ann@example.com", &code, T),
            Err(Refusal::Reused { .. })
        ),
        "used before the restart"
    );
    assert_eq!(
        again.verify("d9", "ann@example.com", &t.generate(T as u64 + 30), T + 30),
        Err(Refusal::Locked),
        "locked before the restart"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(used_path(&key))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
}

#[test]
fn the_secrets_and_used_code_files_never_share_a_temporary_file() {
    let key = std::path::Path::new("/etc/airlock/airlock.key");
    let (secrets, used) = (secrets_path(key), used_path(key));
    assert_ne!(secrets, used);
    assert_ne!(tmp_path(&secrets), tmp_path(&used));
    assert_eq!(
        tmp_path(&secrets).parent(),
        secrets.parent(),
        "renamed within one directory"
    );
}
