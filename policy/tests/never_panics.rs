//! Property tests: no event makes the engine panic, and no policy text makes the loader
//! panic. Strings are drawn from the words the rules look at as well as from arbitrary
//! Unicode, so that the deep paths (flags, scripts, applets, exceptions) are reached.

use execguard_policy::event::{Ancestor, Container, FileFacts, Image, Orchestrator, Parent, Resource};
use execguard_policy::{ExecEvent, Policy, DEFAULT_POLICY};
use proptest::prelude::*;

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "nc",
            "busybox",
            "/bin/busybox",
            "toybox",
            "-e",
            "-c",
            "-lp",
            "-z",
            "--sh-exec",
            "--exec=/bin/sh",
            "--",
            "-",
            "localhost",
            "127.0.0.1",
            "/tmp/x.sh",
            "./x.sh",
            "../../x",
            "/bin/sh",
            "sh",
            "which",
            "",
            "/",
            "//",
            "curl",
            "nc.openbsd",
            "-ve/bin/sh",
            "\u{fffd}",
            "/dev/shm/x",
            "/home/a",
            "re:",
            "*",
            "[",
            "\\",
        ])
        .prop_map(String::from),
        any::<String>(),
    ]
}

fn words() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(word(), 0..8)
}

fn opt_word() -> impl Strategy<Value = Option<String>> {
    prop::option::of(word())
}

fn event() -> impl Strategy<Value = ExecEvent> {
    let process = (word(), words(), opt_word(), prop::option::of(any::<bool>()), opt_word());
    let parent = prop::option::of((opt_word(), opt_word(), words(), opt_word()));
    let ancestors = prop::collection::vec((opt_word(), words(), opt_word()), 0..4);
    let facts =
        (opt_word(), prop::option::of(any::<bool>()), prop::option::of(any::<bool>()), prop::option::of(any::<bool>()));
    let scope = (opt_word(), opt_word(), opt_word(), opt_word());
    (process, parent, ancestors, facts, scope).prop_map(
        |(
            (exe, args, cwd, interactive, name),
            parent,
            ancestors,
            (identity, writable, in_image, fileless),
            (cname, image, ns, pod),
        )| {
            let mut event = ExecEvent::new(exe, args);
            event.process.working_directory = cwd;
            event.process.interactive = interactive;
            event.process.name = name;
            event.process.parent = parent.map(|(executable, name, args, working_directory)| Parent {
                executable,
                name,
                args,
                working_directory,
                pid: Some(1),
            });
            event.execguard.ancestors = ancestors
                .into_iter()
                .map(|(executable, args, working_directory)| Ancestor {
                    executable,
                    args,
                    working_directory,
                    pid: None,
                })
                .collect();
            event.execguard.file = FileFacts { identity, writable_location: writable, in_image, fileless };
            event.container = Some(Container { id: None, name: cname, image: Some(Image { name: image }) });
            event.orchestrator =
                Some(Orchestrator { namespace: ns, resource: Some(Resource { name: pod, kind: None }) });
            event
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn no_event_makes_the_default_policy_panic(event in event()) {
        let policy = Policy::embedded().unwrap();
        let decision = policy.decide(&event);
        let record = policy.record(&event, &decision);
        prop_assert_eq!(record.decision, decision.action);
        // An alert must survive a round trip through JSON and decide the same way.
        let replayed: ExecEvent = serde_json::from_str(&serde_json::to_string(&event).unwrap()).unwrap();
        prop_assert_eq!(policy.decide(&replayed), decision);
    }

    #[test]
    fn no_mutation_of_the_default_policy_makes_the_loader_panic(
        start in 0..DEFAULT_POLICY.len(),
        length in 0usize..40,
        insert in word(),
    ) {
        let mut text = DEFAULT_POLICY.to_string();
        let start = (0..=start).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        let end = (start + length).min(text.len());
        let end = (end..=text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
        text.replace_range(start..end, &insert);
        let _ = Policy::parse(&text, "mutated.toml");
    }

    #[test]
    fn no_text_makes_the_loader_panic(text in any::<String>()) {
        let _ = Policy::parse(&text, "random.toml");
    }
}
