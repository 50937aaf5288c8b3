//! The standard prelude: clean, complete, and faithful to the reference's name pools.

use rlp::syntax::SourceFile;

#[test]
fn prelude_checks_clean_on_its_own() {
    let compilation = rlp::compile(&SourceFile::new("prelude.rlp", rlp::analysis::PRELUDE));
    let problems: Vec<_> = compilation
        .diagnostics
        .problems
        .iter()
        .filter(|p| p.code() != "rlp::W0102") // nothing in the prelude uses its own definitions
        .collect();
    assert!(
        problems.is_empty(),
        "{}",
        compilation.diagnostics.render_plain(80)
    );
}

fn context(name: &str) -> rlp::plan::ContextSpec {
    let src = format!(
        "seed 1\nuse prelude\ntask t {{\n    contexts {name}\n    phrasing english\n    distractors off\n}}\n\
         pretrain p {{\n    model paper-100m\n    data t[op 2]\n    tokens 1k\n}}\neval {{\n    models p\n    split s t[op 2]\n}}\n"
    );
    let compilation = rlp::compile(&SourceFile::new("t.rlp", src));
    let plan = compilation
        .plan
        .unwrap_or_else(|| panic!("{}", compilation.diagnostics.render_plain(80)));
    plan.contexts.into_iter().next().unwrap()
}

fn pools(context: &rlp::plan::ContextSpec, entities: bool) -> Vec<Vec<String>> {
    let pools = if entities {
        &context.entities
    } else {
        &context.items
    };
    pools.iter().map(|p| p.names.clone()).collect()
}

#[test]
fn zoo_teacher_movie_match_the_reference() {
    // Reference §A.1 (`simple_names_three.py`).
    let zoo = context("zoo");
    assert_eq!(zoo.entity_category, "Location");
    assert_eq!(zoo.total, "total number of adult animals");
    assert_eq!(
        pools(&zoo, true),
        [
            [
                "Beverly Forest",
                "Cedar Valley",
                "Oakridge Riverside",
                "Pine Ridge",
                "Maple Creek"
            ],
            [
                "South Zoo",
                "Jefferson Circus",
                "Mayer Aquarium",
                "Bundle Ranch",
                "Hamilton Farm"
            ]
        ]
    );
    assert_eq!(
        pools(&zoo, false),
        [
            [
                "adult bear",
                "adult wolf",
                "adult deer",
                "adult fox",
                "adult racoon"
            ],
            [
                "adult eagle",
                "adult parrot",
                "adult owl",
                "adult blue jay",
                "adult crow"
            ]
        ]
    );
    let teacher = context("teacher");
    assert_eq!(teacher.entity_category, "City");
    assert_eq!(teacher.total, "total number of schools");
    assert_eq!(
        pools(&teacher, true),
        [
            [
                "Evervale City",
                "Hawkesbury",
                "Glenfield City",
                "Westhaven City",
                "Brightford"
            ],
            [
                "Riverton City",
                "Clearwater Bay",
                "Shoreline City",
                "Oakbridge City",
                "Ruby Bay"
            ]
        ]
    );
    assert_eq!(
        pools(&teacher, false),
        [[
            "elementary school",
            "private middle school",
            "public highschool",
            "regional medical school",
            "culinarian school"
        ]]
    );
    let movie = context("movie");
    assert_eq!(movie.entity_category, "Festivals");
    assert_eq!(movie.total, "total number of movies");
    assert_eq!(
        pools(&movie, true),
        [
            [
                "Taylor Movie Festival",
                "Verdi Movie Festival",
                "West Sahara Movie Festival",
                "Northwood Movie Festival",
                "Golden Banana Movie Festival"
            ],
            [
                "Festival Lumière de Valmont",
                "Rêves de Belleville",
                "Cinéma de Montreval",
                "Festival de Clairmont",
                "Festival de Saint-Rivage"
            ]
        ]
    );
    assert_eq!(
        pools(&movie, false),
        [[
            "upbeat metropolis comedy",
            "solemn period drama",
            "futuristic sci-fi movie",
            "calm road movie",
            "intense detective thriller"
        ]]
    );
}

#[test]
fn english_phrasing_reproduces_reference_sentences() {
    use rlp::plan::template::{Slot, fill};
    let src = "seed 1\nuse prelude\ntask t {\n    contexts zoo\n    phrasing english\n    distractors off\n}\n\
               pretrain p {\n    model paper-100m\n    data t[op 2]\n    tokens 1k\n}\neval {\n    models p\n    split s t[op 2]\n}\n";
    let plan = rlp::compile(&SourceFile::new("t.rlp", src)).plan.unwrap();
    let english = &plan.phrasings[0];
    let t = |slot: Slot| english.template(slot);
    // Ex 1 of the reference: "The number of adult crow in Oakridge Riverside equals 1 plus the
    // number of adult blue jay in Oakridge Riverside."
    let name = fill(
        t(Slot::InstanceName),
        &[("item", "adult crow"), ("entity", "Oakridge Riverside")],
    );
    let parent = fill(
        t(Slot::InstanceName),
        &[("item", "adult blue jay"), ("entity", "Oakridge Riverside")],
    );
    let quantity = fill(t(Slot::InstanceRef), &[("name", &name)]);
    let expr = fill(
        t(Slot::Plus),
        &[
            ("k", "1"),
            ("expr", &fill(t(Slot::InstanceRef), &[("name", &parent)])),
        ],
    );
    let sentence =
        fill(t(Slot::Fact), &[("quantity", &quantity), ("expr", &expr)]) + t(Slot::SentenceEnd);
    assert_eq!(
        sentence,
        "the number of adult crow in Oakridge Riverside equals 1 plus the number of adult blue jay in Oakridge Riverside. "
    );
    // "Define adult blue jay in Oakridge Riverside as n; so n = 1. "
    let step = fill(t(Slot::Define), &[("name", &parent), ("var", "n")])
        + t(Slot::FinalPrefix)
        + &fill(t(Slot::AssignLeaf), &[("var", "n"), ("value", "1")])
        + t(Slot::StepEnd);
    assert_eq!(
        step,
        "Define adult blue jay in Oakridge Riverside as n; so n = 1. "
    );
    assert_eq!(fill(t(Slot::Answer), &[("value", "3")]), "Answer: 3.");
}
