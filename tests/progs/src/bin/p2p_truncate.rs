//! Truncation: a message larger than the receive buffer is an error naming both sizes,
//! nothing is written into or past the buffer, and communication goes on afterwards.
//! Eager and rendezvous sizes; each rank sends to its right neighbour (itself if alone).
//! A message that is not a whole number of the receive type's elements is an error
//! from every kind of receive. `wait_all` reports the first failure of several,
//! `wait_all_results` each one's. `recv_vec` of a zero-sized type takes a message
//! that is not empty with an error naming the type and size.
//! After finalize, calls and a second init are clear errors.

use oxmpi::Error;
use oxmpi_testprogs::{check, pattern};

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    let (right, left) = ((rank + 1) % size, (rank + size - 1) % size);
    for (msg_len, buf_len) in [(100usize, 10usize), (1 << 20, 1000), (5, 0)] {
        let msg = pattern(7, msg_len);
        let follow = pattern(8, 64);
        oxmpi::scope(|s| -> oxmpi::Result<()> {
            let a = world.isend(s, &msg, right, 3)?;
            let b = world.isend(s, &follow, right, 4)?;
            // The receive buffer is the middle of a guarded allocation.
            let mut area = vec![0xAAu8; buf_len + 64];
            let err = world
                .recv(&mut area[32..32 + buf_len], left, 3)
                .expect_err("must truncate");
            match err {
                Error::Truncated {
                    source_rank,
                    tag,
                    message_bytes,
                    buffer_bytes,
                } => {
                    check(
                        &world,
                        (source_rank, tag, message_bytes, buffer_bytes)
                            == (left, 3, msg_len, buf_len),
                        || format!("wrong truncation report: {err}"),
                    );
                    let text = err.to_string();
                    check(
                        &world,
                        text.contains(&msg_len.to_string()) && text.contains(&buf_len.to_string()),
                        || format!("message does not name both sizes: {text}"),
                    );
                }
                other => check(&world, false, || {
                    format!("expected truncation, got {other}")
                }),
            }
            check(&world, area.iter().all(|&b| b == 0xAA), || {
                "truncated receive wrote into memory".into()
            });
            let mut got = vec![0u8; 64];
            world.recv(&mut got, left, 4)?;
            check(&world, got == follow, || {
                "message after a truncation is wrong".into()
            });
            oxmpi::wait_all(vec![a, b])?;
            Ok(())
        })?;
    }
    // recv_vec of a size that is not a whole number of elements.
    world.send(&[1u8, 2, 3], right, 9)?;
    match world.recv_vec::<u32>(oxmpi::ANY_SOURCE, 9) {
        Err(Error::PartialElement {
            source_rank,
            tag: 9,
            bytes: 3,
            elem_size: 4,
        }) if source_rank == left => {}
        other => check(&world, false, || {
            format!("expected a partial-element error, got {other:?}")
        }),
    }
    // recv_vec of a zero-sized type: an empty message is an empty vector; any other,
    // eager or rendezvous, is an error naming the type and the size, and is taken off
    // the queue (the next message of the same tag is the one received next).
    let big = pattern(13, 1 << 20);
    oxmpi::scope(|s| -> oxmpi::Result<()> {
        let sent = vec![
            world.isend(s, &[5u8; 3], right, 12)?,
            world.isend(s, &big, right, 12)?,
            world.isend(s, &[6u8; 2], right, 12)?,
            world.isend(s, &[0u8; 0], right, 13)?,
        ];
        for bytes in [3, 1 << 20] {
            let got = world.recv_vec::<()>(left, 12);
            let text = got
                .as_ref()
                .err()
                .map(ToString::to_string)
                .unwrap_or_default();
            check(
                &world,
                matches!(
                    got,
                    Err(Error::ZeroSizedElement {
                        source_rank,
                        tag: 12,
                        bytes: b,
                        type_name: "()",
                    }) if source_rank == left && b == bytes
                ) && text.contains(&format!("{bytes} bytes"))
                    && text.contains("zero-sized type ()"),
                || format!("recv_vec::<()> of {bytes} bytes: {got:?} ({text})"),
            );
        }
        let (next, _) = world.recv_vec::<u8>(left, 12)?;
        check(&world, next == [6, 6], || {
            format!("after the zero-sized receives: {next:?}")
        });
        let (none, status) = world.recv_vec::<()>(left, 13)?;
        check(
            &world,
            none.is_empty() && (status.source, status.bytes) == (left, 0),
            || format!("recv_vec::<()> of an empty message: {none:?} {status:?}"),
        );
        oxmpi::wait_all(sent)?;
        Ok(())
    })?;
    // The same for recv, sendrecv, irecv and wait_all: the bytes arrive, the last
    // element only partly, and the call says so; communication goes on.
    let partial = |what: &str, got: oxmpi::Result<oxmpi::Status>| {
        check(
            &world,
            matches!(
                got,
                Err(Error::PartialElement {
                    source_rank,
                    tag: 10,
                    bytes: 7,
                    elem_size: 4
                }) if source_rank == left
            ),
            || format!("{what}: expected a partial-element error, got {got:?}"),
        );
    };
    let seven = [1u8, 2, 3, 4, 5, 6, 7];
    let want = u32::from_ne_bytes([1, 2, 3, 4]);
    world.send(&seven, right, 10)?;
    let mut words = [0u32; 4];
    partial("recv", world.recv(&mut words, left, 10));
    let tail = u32::from_ne_bytes([5, 6, 7, 0]);
    check(&world, words[..2] == [want, tail], || {
        format!("recv of 7 bytes wrote {words:x?}")
    });
    partial(
        "sendrecv",
        world.sendrecv(&seven, right, 10, &mut words, left, 10),
    );
    let (mut a, mut b, mut c) = ([0u32; 2], [0u32; 2], [0u16; 4]);
    oxmpi::scope(|s| -> oxmpi::Result<()> {
        let ra = world.irecv(s, &mut a, left, 10)?;
        let rb = world.irecv(s, &mut b, left, 10)?;
        let rc = world.irecv(s, &mut c, left, 11)?;
        for _ in 0..2 {
            world.send(&seven, right, 10)?;
        }
        world.send(&seven[..6], right, 11)?;
        partial("irecv", ra.wait());
        partial("wait_all", oxmpi::wait_all(vec![rb]).map(|s| s[0]));
        let whole = rc.wait()?;
        check(&world, whole.count::<u16>() == 3, || format!("{whole:?}"));
        Ok(())
    })?;
    // wait_some: a failed request is reported by a call of its own, and the statuses
    // of those that completed with it are not lost.
    let (mut p, mut q, mut r) = ([0u8; 8], [0u8; 2], [0u8; 8]);
    oxmpi::scope(|s| -> oxmpi::Result<()> {
        let mut slots = vec![
            Some(world.irecv(s, &mut p, left, 20)?),
            Some(world.irecv(s, &mut q, left, 21)?),
            Some(world.irecv(s, &mut r, left, 22)?),
        ];
        for tag in 20..23 {
            world.send(&[7u8; 8], right, tag)?;
        }
        // All three are here before the first call (so that one call finds them
        // complete together): they were sent before the barrier.
        world.barrier()?;
        let (mut got, mut failed) = (Vec::new(), 0);
        while slots.iter().any(Option::is_some) {
            match oxmpi::wait_some(&mut slots) {
                Ok(some) => got.extend(some.into_iter().map(|(i, _)| i)),
                Err(Error::Truncated { tag: 21, .. }) => failed += 1,
                Err(e) => return Err(e),
            }
        }
        got.sort_unstable();
        check(&world, got == [0, 2] && failed == 1, || {
            format!("wait_some returned {got:?} and {failed} failures")
        });
        Ok(())
    })?;
    // wait_any: the failed request's slot is emptied, the others keep theirs.
    let (mut p, mut q, mut r) = ([0u8; 8], [0u8; 2], [0u8; 8]);
    oxmpi::scope(|s| -> oxmpi::Result<()> {
        let mut slots = vec![
            Some(world.irecv(s, &mut p, left, 30)?),
            Some(world.irecv(s, &mut q, left, 31)?),
            Some(world.irecv(s, &mut r, left, 32)?),
        ];
        for tag in [31, 30, 32] {
            world.send(&[7u8; 8], right, tag)?;
        }
        let mut events = Vec::new();
        while slots.iter().any(Option::is_some) {
            let before: Vec<bool> = slots.iter().map(Option::is_some).collect();
            match oxmpi::wait_any(&mut slots) {
                Ok(Some((i, status))) => events.push((i, status.tag)),
                Err(Error::Truncated { tag: 31, .. }) => {
                    let emptied: Vec<usize> = (0..3)
                        .filter(|&i| before[i] && slots[i].is_none())
                        .collect();
                    check(&world, emptied == [1], || {
                        format!("a failed wait_any emptied slots {emptied:?}")
                    });
                    events.push((1, -31));
                }
                other => {
                    return Err(other.err().unwrap_or(Error::InvalidArgument(
                        "wait_any found nothing with requests in flight".into(),
                    )));
                }
            }
        }
        events.sort_unstable();
        check(&world, events == [(0, 30), (1, -31), (2, 32)], || {
            format!("wait_any reported {events:?}")
        });
        Ok(())
    })?;
    // wait_all returns the failure with the lowest index; wait_all_results every
    // request's outcome in order (MPI_ERR_IN_STATUS), the data of the others arriving
    // whole: an eager receive, a truncated one, a send, a partial element, a
    // rendezvous receive and its send.
    let big = pattern(12, 1 << 20);
    for each in [false, true] {
        let (mut a, mut b, mut c) = ([0u8; 8], [0u8; 2], [0u32; 2]);
        let mut d = vec![0u8; 1 << 20];
        let results = oxmpi::scope(|s| -> oxmpi::Result<Vec<oxmpi::Result<oxmpi::Status>>> {
            let requests = vec![
                world.irecv(s, &mut a, left, 40)?,
                world.irecv(s, &mut b, left, 41)?,
                world.isend(s, &[9u8; 8], right, 44)?,
                world.irecv(s, &mut c, left, 42)?,
                world.irecv(s, &mut d, left, 43)?,
                world.isend(s, &big, right, 43)?,
            ];
            world.send(&[7u8; 8], right, 40)?;
            world.send(&[7u8; 8], right, 41)?;
            world.send(&seven, right, 42)?;
            world.recv(&mut [0u8; 8], left, 44)?;
            if each {
                return oxmpi::wait_all_results(requests);
            }
            let first = oxmpi::wait_all(requests);
            check(
                &world,
                matches!(first, Err(Error::Truncated { tag: 41, .. })),
                || format!("wait_all: expected the truncation at index 1, got {first:?}"),
            );
            Ok(Vec::new())
        })?;
        check(&world, a == [7; 8] && d == big, || {
            format!("wait_all (each: {each}): the data of the other requests is wrong")
        });
        if !each {
            continue;
        }
        let outcome: Vec<String> = results
            .iter()
            .map(|r| match r {
                Ok(s) => format!("ok {} {}", s.tag, s.bytes),
                Err(Error::Truncated { tag, .. }) => format!("truncated {tag}"),
                Err(Error::PartialElement { tag, bytes, .. }) => format!("partial {tag} {bytes}"),
                Err(e) => format!("{e}"),
            })
            .collect();
        let want = [
            "ok 40 8".to_string(),
            "truncated 41".into(),
            // A send's status is empty (MPI leaves it undefined).
            "ok -1 0".into(),
            "partial 42 7".into(),
            format!("ok 43 {}", 1 << 20),
            "ok -1 0".into(),
        ];
        check(&world, outcome == want, || {
            format!("wait_all_results reported {outcome:?}")
        });
    }
    // A failure wait_some left in its slot is reported by wait_all_results in turn.
    let (mut p, mut q) = ([0u8; 8], [0u8; 2]);
    oxmpi::scope(|s| -> oxmpi::Result<()> {
        let mut slots = vec![
            Some(world.irecv(s, &mut p, left, 50)?),
            Some(world.irecv(s, &mut q, left, 51)?),
        ];
        world.send(&[7u8; 8], right, 50)?;
        world.send(&[7u8; 8], right, 51)?;
        world.barrier()?;
        let first = oxmpi::wait_some(&mut slots)?;
        check(&world, first.iter().map(|(i, _)| *i).eq([0]), || {
            format!("wait_some reported {first:?}")
        });
        let rest = oxmpi::wait_all_results(slots.into_iter().flatten().collect())?;
        check(
            &world,
            matches!(rest[..], [Err(Error::Truncated { tag: 51, .. })]),
            || format!("wait_all_results after wait_some: {rest:?}"),
        );
        Ok(())
    })?;
    // Bad arguments are errors, not panics.
    check(
        &world,
        matches!(world.send(&[0u8], size, 0), Err(Error::InvalidRank { .. })),
        || "rank".into(),
    );
    check(
        &world,
        matches!(world.send(&[0u8], 0, -5), Err(Error::InvalidTag { .. })),
        || "tag".into(),
    );
    check(
        &world,
        matches!(
            world.recv(&mut [0u8], -3, 0),
            Err(Error::InvalidRank { .. })
        ),
        || "src".into(),
    );
    // A nonblocking receive keeps its element size in 32 bits and refuses larger
    // elements (a whole message into 4 GiB elements completed as a partial element).
    type Huge = [[[u8; 4096]; 4096]; 256];
    let huge = oxmpi::scope(|s| world.irecv::<Huge>(s, &mut [], 0, 0).map(drop));
    check(
        &world,
        matches!(&huge, Err(Error::InvalidArgument(m)) if m.contains("4 GiB")),
        || format!("irecv of 4 GiB elements: {huge:?}"),
    );
    // Calls from another thread than init's are refused (MPI_THREAD_FUNNELED).
    let other = world.clone();
    let from_thread = std::thread::spawn(move || other.send(&[0u8], 0, 0))
        .join()
        .expect("thread");
    check(
        &world,
        matches!(from_thread, Err(Error::WrongThread)),
        || format!("{from_thread:?}"),
    );
    if rank == 0 {
        println!("truncate ok on {size} ranks");
    }
    // Last: a receiver refuses a long message and finalizes at once, while its sender
    // looks only later. The refusal completes the send; the receiver's goodbye must
    // not overtake it (over TCP they travel different connections). An error here
    // makes the job fail after the line above.
    let (even, odd) = (rank % 2 == 0, rank % 2 == 1);
    if even && rank + 1 < size {
        let long = pattern(9, 1 << 20);
        oxmpi::scope(|s| -> oxmpi::Result<()> {
            let send = world.isend(s, &long, rank + 1, 11)?;
            std::thread::sleep(std::time::Duration::from_millis(50));
            send.wait().map(drop)
        })?;
    } else if odd {
        let refused = world.recv(&mut [0u8; 10], rank - 1, 11);
        check(
            &world,
            matches!(refused, Err(Error::Truncated { .. })),
            || format!("expected truncation, got {refused:?}"),
        );
    }
    universe.finalize()?;
    // After finalize: calls on a kept communicator and a second init are clear errors
    // (a second init must not take over whatever file now has the PMI descriptor's
    // number).
    let late = world.send(&[1u8], rank, 12);
    assert!(matches!(late, Err(Error::NotInitialized)), "{late:?}");
    let again = oxmpi::init();
    assert!(matches!(again, Err(Error::Finalized)), "{:?}", again.err());
    Ok(())
}
