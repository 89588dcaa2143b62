//! The PMI-1 server seen from ranks: a bash client doing init, put, barrier, get,
//! finalize, abort, and sending garbage.

mod common;

use common::*;

#[test]
fn put_barrier_get_across_four_ranks() {
    let script = pmi_script(
        r#"
pmi "cmd=init pmi_version=1 pmi_subversion=1"
[ "$REPLY" = "cmd=response_to_init pmi_version=1 pmi_subversion=1 oxmpi=1 rc=0" ] || { echo "bad init: $REPLY"; exit 9; }
pmi "cmd=get_my_kvsname"
kvs=${REPLY#*kvsname=}; kvs=${kvs%% *}
[ "$kvs" = "oxmpi_$OXMPI_JOB_ID" ] || { echo "bad kvsname: $REPLY"; exit 9; }
pmi "cmd=get_universe_size"; echo "universe $REPLY"
pmi "cmd=get_appnum"; echo "appnum $REPLY"
pmi "cmd=get_maxes"; echo "maxes $REPLY"
for round in 1 2; do
  pmi "cmd=put kvsname=$kvs key=addr-$round-$PMI_RANK value=v$round-$PMI_RANK"
  [ "$REPLY" = "cmd=put_result rc=0 msg=success" ] || { echo "bad put: $REPLY"; exit 9; }
  pmi "cmd=barrier_in"
  [ "$REPLY" = "cmd=barrier_out rc=0" ] || { echo "bad barrier: $REPLY"; exit 9; }
  for r in 0 1 2 3; do
    pmi "cmd=get kvsname=$kvs key=addr-$round-$r"
    echo "got $REPLY"
  done
done
pmi "cmd=get kvsname=$kvs key=nobody"; echo "missing $REPLY"
pmi "cmd=finalize"; echo "final $REPLY"
"#,
    );
    let run = run_job(oxrun(&["--tag-output", "-n", "4", "bash", "-c", &script]));
    assert_eq!(run.code(), 0, "{run:?}");
    for rank in 0..4 {
        let mine: Vec<&str> = run
            .stdout
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("[{rank}] ")))
            .collect();
        let mut expected = vec![
            "universe cmd=universe_size size=4 rc=0".to_owned(),
            "appnum cmd=appnum appnum=0 rc=0".to_owned(),
            "maxes cmd=maxes kvsname_max=256 keylen_max=64 vallen_max=1024 rc=0".to_owned(),
        ];
        for round in 1..=2 {
            for r in 0..4 {
                expected.push(format!(
                    "got cmd=get_result rc=0 value=v{round}-{r} msg=success"
                ));
            }
        }
        expected.push("missing cmd=get_result rc=-1 msg=key_nobody_not_found".to_owned());
        expected.push("final cmd=finalize_ack rc=0".to_owned());
        assert_eq!(mine, expected, "rank {rank}: {run:?}");
    }
}

#[test]
fn process_mapping_is_prepopulated() {
    let script = pmi_script(
        r#"
pmi "cmd=init pmi_version=1 pmi_subversion=1"
pmi "cmd=get kvsname=oxmpi_$OXMPI_JOB_ID key=PMI_process_mapping"
echo "$REPLY"
pmi "cmd=finalize"
"#,
    );
    let run = run_job(oxrun(&["-n", "3", "bash", "-c", &script]));
    assert_eq!(run.code(), 0, "{run:?}");
    assert_eq!(
        run.stdout.lines().collect::<Vec<_>>(),
        vec!["cmd=get_result rc=0 value=(vector,(0,1,3)) msg=success"; 3]
    );
}

#[test]
fn unknown_command_gets_an_error_reply() {
    let script = pmi_script(
        r#"
pmi "cmd=init pmi_version=1 pmi_subversion=1"
pmi "cmd=publish_name service=x port=y"; echo "$REPLY"
pmi "cmd=init pmi_version=2 pmi_subversion=0"; echo "$REPLY"
pmi "cmd=finalize"
"#,
    );
    let run = run_job(oxrun(&["-n", "1", "bash", "-c", &script]));
    assert_eq!(run.code(), 0, "{run:?}");
    assert_eq!(
        run.stdout,
        "cmd=publish_name_result rc=-1 msg=unknown_command\n\
         cmd=response_to_init pmi_version=1 pmi_subversion=1 oxmpi=1 rc=-1\n"
    );
}

#[test]
fn abort_ends_the_job_with_its_code() {
    let script = pmi_script(
        r#"
pmi "cmd=init pmi_version=1 pmi_subversion=1"
if [ "$PMI_RANK" = 1 ]; then
  pmi_send "cmd=abort exitcode=7 msg=bad_input"
  sleep 1000
fi
exec sleep 1000
"#,
    );
    let run = run_job(oxrun(&["-n", "3", "bash", "-c", &script]));
    assert_eq!(run.code(), 7, "{run:?}");
    assert_eq!(
        run.oxrun_lines(),
        vec!["oxrun: rank 1 called abort with code 7: bad_input"]
    );
}

#[test]
fn abort_texts_of_mpich_and_of_older_clients_are_reported() {
    for (req, code, report) in [
        // MPICH 4.1 and later: the text as it is, spaces included.
        (
            "cmd=abort exitcode=3 message=application called MPI_Abort(MPI_COMM_WORLD, 3) - process 1",
            3,
            "oxrun: rank 1 called abort with code 3: application called MPI_Abort(MPI_COMM_WORLD, 3) - process 1",
        ),
        (
            "cmd=abort exitcode=5 message=gave_up",
            5,
            "oxrun: rank 1 called abort with code 5: gave_up",
        ),
        // Older clients: one word under msg=.
        (
            "cmd=abort exitcode=6 msg=bad_input",
            6,
            "oxrun: rank 1 called abort with code 6: bad_input",
        ),
    ] {
        let script = pmi_script(&format!(
            "pmi \"cmd=init pmi_version=1 pmi_subversion=1\"\n\
             if [ \"$PMI_RANK\" = 1 ]; then pmi_send '{req}'; fi\n\
             exec sleep 1000\n"
        ));
        let run = run_job(oxrun(&["-n", "2", "bash", "-c", &script]));
        assert_eq!(run.code(), code, "{req}: {run:?}");
        assert_eq!(run.oxrun_lines(), vec![report], "{req}: {run:?}");
    }
}

#[test]
fn abort_without_exitcode_or_with_zero_exits_1() {
    for req in ["cmd=abort", "cmd=abort exitcode=0"] {
        let script = pmi_script(&format!(
            "pmi \"cmd=init pmi_version=1 pmi_subversion=1\"\npmi_send \"{req}\"\nexec sleep 1000\n"
        ));
        let run = run_job(oxrun(&["-n", "2", "bash", "-c", &script]));
        assert_eq!(run.code(), 1, "{req}: {run:?}");
        assert_eq!(run.oxrun_lines().len(), 1, "{run:?}");
        assert!(run.stderr.contains("called abort with code"), "{run:?}");
    }
}

#[test]
fn exit_without_finalize_fails() {
    let script = pmi_script(
        r#"
pmi "cmd=init pmi_version=1 pmi_subversion=1"
if [ "$PMI_RANK" = 0 ]; then exit 0; fi
exec sleep 1000
"#,
    );
    let run = run_job(oxrun(&["-n", "2", "bash", "-c", &script]));
    assert_eq!(run.code(), 1, "{run:?}");
    let lines = run.oxrun_lines();
    assert_eq!(lines.len(), 1, "{run:?}");
    assert!(lines[0].starts_with("oxrun: rank 0 (pid "), "{run:?}");
    assert!(
        lines[0].ends_with(") exited without calling finalize"),
        "{run:?}"
    );
}

#[test]
fn finalize_then_exit_is_success_even_without_waiting_for_the_ack() {
    let script = pmi_script(
        r#"
pmi "cmd=init pmi_version=1 pmi_subversion=1"
pmi_send "cmd=finalize"
"#,
    );
    let run = run_job(oxrun(&["-n", "4", "bash", "-c", &script]));
    assert_eq!(run.code(), 0, "{run:?}");
}

#[test]
fn closing_the_pmi_socket_early_is_fine() {
    let script = pmi_script(
        r#"
pmi "cmd=init pmi_version=1 pmi_subversion=1"
pmi "cmd=finalize"
exec {PMI_FD}>&-
sleep 0.2
echo still here
"#,
    );
    let run = run_job(oxrun(&["-n", "2", "bash", "-c", &script]));
    assert_eq!(run.code(), 0, "{run:?}");
    assert_eq!(run.stdout, "still here\nstill here\n");
}

#[test]
fn malformed_line_ends_the_job() {
    let script = pmi_script(
        r#"
pmi "cmd=init pmi_version=1 pmi_subversion=1"
if [ "$PMI_RANK" = 1 ]; then pmi_send "this is not pmi"; fi
exec sleep 1000
"#,
    );
    let run = run_job(oxrun(&["-n", "2", "bash", "-c", &script]));
    assert_eq!(run.code(), 1, "{run:?}");
    let lines = run.oxrun_lines();
    assert_eq!(lines.len(), 1, "{run:?}");
    assert!(
        lines[0].starts_with("oxrun: rank 1 sent a malformed PMI line"),
        "{run:?}"
    );
}

#[test]
fn overlong_line_ends_the_job() {
    let script = pmi_script(
        r#"
head -c 10000 /dev/zero | tr '\0' a >&$PMI_FD
exec sleep 1000
"#,
    );
    let run = run_job(oxrun(&["-n", "1", "bash", "-c", &script]));
    assert_eq!(run.code(), 1, "{run:?}");
    assert!(
        run.stderr
            .contains("oxrun: rank 0 sent a malformed PMI line"),
        "{run:?}"
    );
}

#[test]
fn barrier_with_a_rank_that_ended_fails_instead_of_hanging() {
    let script = pmi_script(
        r#"
if [ "$PMI_RANK" = 0 ]; then exit 0; fi
pmi "cmd=init pmi_version=1 pmi_subversion=1"
pmi "cmd=barrier_in"
"#,
    );
    let run = run_job(oxrun(&["-n", "2", "bash", "-c", &script]));
    assert_eq!(run.code(), 1, "{run:?}");
    assert!(run.stderr.contains("oxrun: rank 0 (pid "), "{run:?}");
    assert!(run.stderr.contains("PMI barrier"), "{run:?}");
}
