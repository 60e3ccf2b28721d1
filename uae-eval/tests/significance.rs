//! The paired randomization test and bootstrap interval against scipy on
//! the committed fixture (assets/make_significance_reference.py).

use uae_eval::significance::{TestOptions, paired};

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    a: Vec<f64>,
    b: Vec<f64>,
    exact: bool,
    mean_difference: f64,
    p_value: f64,
    ci_low: f64,
    ci_high: f64,
}

#[derive(serde::Deserialize)]
struct Reference {
    cases: Vec<Case>,
}

#[test]
fn randomization_test_and_bootstrap_match_scipy() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/fixtures/significance/reference.json");
    let reference: Reference = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(reference.cases.len(), 5);
    for case in &reference.cases {
        let test = paired(&case.a, &case.b, &TestOptions::default());
        let name = &case.name;
        assert_eq!(test.n, case.a.len());
        assert!((test.mean_difference - case.mean_difference).abs() < 1e-12, "{name}");
        // Exact enumeration is deterministic; Monte-Carlo p-values from 10,000
        // draws have a standard error below 0.005.
        let p_tolerance = if case.exact { 1e-12 } else { 0.015 };
        assert!((test.p_value - case.p_value).abs() < p_tolerance, "{name}: p {} vs scipy {}", test.p_value, case.p_value);
        // Bootstrap bounds carry Monte-Carlo error too (about 0.002 here); the
        // means of binary scores lie on a grid of 1/n, so a bound may sit one
        // step away from scipy's.
        let ci_tolerance = 0.01f64.max(1.0 / case.a.len() as f64 + 1e-9);
        assert!((test.ci_low - case.ci_low).abs() < ci_tolerance, "{name}: low {} vs scipy {}", test.ci_low, case.ci_low);
        assert!((test.ci_high - case.ci_high).abs() < ci_tolerance, "{name}: high {} vs scipy {}", test.ci_high, case.ci_high);
        assert_eq!(test.significant, test.p_value < 0.05, "{name}");
    }
    // The shifted case is significant, the identical one is not, with p = 1.
    let by_name = |n: &str| reference.cases.iter().find(|c| c.name == n).unwrap();
    let shifted = by_name("exact-12-shifted");
    assert!(paired(&shifted.a, &shifted.b, &TestOptions::default()).significant);
    let same = by_name("identical-20");
    let test = paired(&same.a, &same.b, &TestOptions::default());
    assert_eq!((test.p_value, test.ci_low, test.ci_high, test.significant), (1.0, 0.0, 0.0, false));
}

#[test]
fn a_seed_gives_the_same_figures_and_another_seed_close_ones() {
    let a: Vec<f64> = (0..40).map(|i| ((i * 7) % 11) as f64 / 10.0).collect();
    let b: Vec<f64> = (0..40).map(|i| ((i * 5) % 13) as f64 / 12.0).collect();
    let options = TestOptions::default();
    assert_eq!(paired(&a, &b, &options), paired(&a, &b, &options));
    let other = paired(&a, &b, &TestOptions { seed: 7, ..options });
    let first = paired(&a, &b, &options);
    assert!((other.p_value - first.p_value).abs() < 0.03, "{other:?} {first:?}");
    assert!(paired(&[], &[], &options).p_value.is_nan());
}
