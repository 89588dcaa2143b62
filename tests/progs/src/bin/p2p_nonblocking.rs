//! Requests: wait_any, wait_some, test_any, test_some, test_all over mixed sends and
//! receives; cancelled receives, matched or not; a request
//! dropped or forgotten inside a scope is still completed before the scope ends (so
//! its buffer is never written after it is gone); ANY_SOURCE nonblocking receives; a
//! completion is reported once.

use oxmpi::ANY_SOURCE;
use oxmpi_testprogs::check;

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    let (right, left) = ((rank + 1) % size, (rank + size - 1) % size);

    // A request's completion is reported once: `test` on another thread fails without
    // taking it, and after `test` reported it, wait_any passes over it.
    let mut inbox = [0u32];
    oxmpi::scope(|s| -> oxmpi::Result<()> {
        let mut r = world.irecv(s, &mut inbox, rank, 50)?;
        let elsewhere = std::thread::scope(|t| t.spawn(|| r.test().is_err()).join());
        check(&world, elsewhere.unwrap_or(false), || {
            "test on another thread did not fail".into()
        });
        world.send(&[42u32], rank, 50)?;
        while r.test()?.is_none() {}
        let mut slots = vec![Some(r)];
        check(&world, oxmpi::wait_any(&mut slots)?.is_none(), || {
            "wait_any took a request whose completion was reported".into()
        });
        Ok(())
    })?;
    check(&world, inbox == [42], || format!("received {inbox:?}"));

    // wait_any / wait_some / test_any collect every request exactly once.
    let outs: Vec<[i32; 4]> = (0..8).map(|i| [rank, i, 0, 0]).collect();
    let mut ins = [[-1i32; 4]; 8];
    oxmpi::scope(|s| -> oxmpi::Result<()> {
        let mut slots = Vec::new();
        for (i, buf) in ins.iter_mut().enumerate() {
            slots.push(Some(world.irecv(s, buf, left, i as i32)?));
        }
        for (i, buf) in outs.iter().enumerate().rev() {
            slots.push(Some(world.isend(s, buf, right, i as i32)?));
        }
        let mut done = 0;
        if let Some((i, _)) = oxmpi::wait_any(&mut slots)? {
            check(&world, slots[i].is_none(), || {
                "wait_any left the slot".into()
            });
            done += 1;
        }
        while done < 16 {
            if let Some((i, _)) = oxmpi::test_any(&mut slots)? {
                check(&world, slots[i].is_none(), || {
                    "test_any left the slot".into()
                });
                done += 1;
            }
            let some = oxmpi::wait_some(&mut slots)?;
            done += some.len();
        }
        check(&world, slots.iter().all(Option::is_none), || {
            "requests left".into()
        });
        check(&world, oxmpi::wait_any(&mut slots)?.is_none(), || {
            "wait_any on nothing".into()
        });
        Ok(())
    })?;
    for (i, b) in ins.iter().enumerate() {
        check(&world, *b == [left, i as i32, 0, 0], || {
            format!("message {i}: {b:?}")
        });
    }

    // test_some collects every request exactly once too; test_all takes nothing until
    // every request has completed (and counts a reported or empty slot as done).
    let mut ins = [[-1i32; 4]; 8];
    oxmpi::scope(|s| -> oxmpi::Result<()> {
        let mut slots = Vec::new();
        for (i, buf) in ins.iter_mut().enumerate() {
            slots.push(Some(world.irecv(s, buf, left, 100 + i as i32)?));
        }
        let mut sends = Vec::new();
        for (i, buf) in outs.iter().enumerate() {
            sends.push(Some(world.isend(s, buf, right, 100 + i as i32)?));
        }
        let mut seen = [0; 8];
        while seen.iter().sum::<i32>() < 4 {
            for (i, _) in oxmpi::test_some(&mut slots[..4])? {
                seen[i] += 1;
            }
        }
        let statuses = loop {
            let before = slots.iter().filter(|s| s.is_some()).count();
            match oxmpi::test_all(&mut slots)? {
                Some(statuses) => break statuses,
                None => check(
                    &world,
                    slots.iter().filter(|s| s.is_some()).count() == before,
                    || "test_all took requests before all had completed".into(),
                ),
            }
        };
        check(&world, seen[..4] == [1, 1, 1, 1], || {
            format!("test_some: {seen:?}")
        });
        check(
            &world,
            statuses.len() == 8 && slots.iter().all(Option::is_none),
            || "test_all left requests".into(),
        );
        for (i, status) in statuses.iter().enumerate().skip(4) {
            check(
                &world,
                status.tag == 100 + i as i32 && status.source == left,
                || format!("test_all status {i}: {status:?}"),
            );
        }
        oxmpi::wait_all(sends.into_iter().flatten().collect())?;
        Ok(())
    })?;
    for (i, b) in ins.iter().enumerate() {
        check(&world, *b == [left, i as i32, 0, 0], || {
            format!("message {} by test_some and test_all: {b:?}", 100 + i)
        });
    }

    // Cancelling: receives that never match end without a message, from one rank or
    // any (the scope can end); one whose message (small or large) has arrived
    // completes with it; a send is waited for.
    let (tiny, big) = ([rank as u8; 8], vec![rank as u8; 300_000]);
    let (mut never, mut never_any) = ([7u8; 8], [7u8; 8]);
    let (mut small, mut large) = ([0u8; 8], vec![0u8; 300_000]);
    oxmpi::scope(|s| -> oxmpi::Result<()> {
        let a = world.irecv(s, &mut never, left, 200)?;
        let b = world.irecv(s, &mut never_any, ANY_SOURCE, 201)?;
        let sends = [
            world.isend(s, &tiny, right, 202)?,
            world.isend(s, &big, right, 203)?,
        ];
        // Both messages from the left are here once its probes say so.
        while world.iprobe(left, 202)?.is_none() || world.iprobe(left, 203)?.is_none() {}
        let c = world.irecv(s, &mut small, left, 202)?;
        let d = world.irecv(s, &mut large, left, 203)?;
        check(
            &world,
            a.cancel()?.is_none() && b.cancel()?.is_none(),
            || "unmatched receives were not cancelled".into(),
        );
        let got = (c.cancel()?, d.cancel()?);
        check(
            &world,
            got.0.is_some_and(|st| st.bytes == 8) && got.1.is_some_and(|st| st.bytes == 300_000),
            || format!("matched receives: {got:?}"),
        );
        for send in sends {
            check(&world, send.cancel()?.is_some(), || {
                "a send was cancelled".into()
            });
        }
        check(&world, world.ibarrier(s)?.cancel()?.is_some(), || {
            "a collective was cancelled".into()
        });
        Ok(())
    })?;
    check(
        &world,
        never == [7; 8]
            && never_any == [7; 8]
            && small == [left as u8; 8]
            && large.iter().all(|&b| b == left as u8),
        || "cancelled or matched receives' buffers".into(),
    );
    world.barrier()?;

    // Dropped and forgotten requests: the scope completes them.
    let big_out = vec![rank as u8; 300_000];
    // Filled with what no message carries (ranks are below 255).
    let mut big_in = vec![255u8; 300_000];
    let mut small_in = [0u8; 3];
    oxmpi::scope(|s| -> oxmpi::Result<()> {
        let r = world.irecv(s, &mut big_in, left, 20)?;
        std::mem::forget(r);
        drop(world.irecv(s, &mut small_in, left, 21)?);
        std::mem::forget(world.isend(s, &big_out, right, 20)?);
        drop(world.isend(s, &[9u8, 9, 9], right, 21)?);
        Ok(())
    })?;
    check(
        &world,
        big_in.iter().all(|&b| b == left as u8) && small_in == [9, 9, 9],
        || "forgotten".into(),
    );

    // A panic inside a scope whose operations have all finished unwinds normally.
    let mut caught = [0u8; 4];
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        oxmpi::scope(|s| {
            let r = world.irecv(s, &mut caught, left, 30).expect("irecv");
            world.send(&[4u8, 3, 2, 1], right, 30).expect("send");
            r.wait().expect("wait");
            panic!("deliberate");
        })
    }));
    check(&world, result.is_err() && caught == [4, 3, 2, 1], || {
        "panic in scope".into()
    });

    // A panic the program catches, which drops a communicator as it unwinds (freeing
    // its context is a call of its own, made while the thread unwinds): the program
    // carries on (the job ended, blaming a panic inside an oxmpi call).
    let dup = world.dup()?;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _held = dup;
        panic!("deliberate, with a communicator held");
    }));
    check(&world, result.is_err(), || "caught panic".into());
    world.barrier()?;

    // ANY_SOURCE nonblocking receives: everyone sends to rank 0.
    if rank == 0 {
        let mut got = vec![[0i32]; size as usize];
        oxmpi::scope(|s| -> oxmpi::Result<()> {
            let reqs = got
                .iter_mut()
                .map(|g| world.irecv(s, g, ANY_SOURCE, 40))
                .collect::<oxmpi::Result<Vec<_>>>()?;
            world.send(&[0i32], 0, 40)?;
            let statuses = oxmpi::wait_all(reqs)?;
            let mut sources: Vec<i32> = statuses.iter().map(|s| s.source).collect();
            sources.sort();
            check(&world, sources == (0..size).collect::<Vec<_>>(), || {
                format!("sources {sources:?}")
            });
            Ok(())
        })?;
        let mut vals: Vec<i32> = got.iter().map(|g| g[0]).collect();
        vals.sort();
        check(&world, vals == (0..size).collect::<Vec<_>>(), || {
            format!("values {vals:?}")
        });
        println!("nonblocking ok on {size} ranks");
    } else {
        world.send(&[rank], 0, 40)?;
    }
    universe.finalize()
}
