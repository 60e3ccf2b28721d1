//! Progress bars on standard error, shown only when it is a terminal so that
//! logs and pipes stay clean.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar counting `total` items of `unit`, with rate and ETA; hidden when
/// standard error is not a terminal.
pub fn bar(total: u64, unit: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    let template = format!("{{spinner}} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} {unit} ({{per_sec}}, ETA {{eta}}) {{msg}}");
    bar.set_style(ProgressStyle::with_template(&template).expect("valid template"));
    bar
}

/// The binary's [`uae_data::Progress`]: status lines on standard error and
/// one [`bar`] at a time for counted work.
#[derive(Default)]
pub struct Bars {
    current: std::sync::Mutex<Option<ProgressBar>>,
}

impl uae_data::Progress for Bars {
    fn message(&self, text: &str) {
        eprintln!("{text}");
    }

    fn start(&self, total: u64, unit: &str) {
        *self.current.lock().expect("progress lock") = Some(bar(total, unit));
    }

    fn advance(&self, n: u64) {
        if let Some(bar) = &*self.current.lock().expect("progress lock") {
            bar.inc(n);
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.current.lock().expect("progress lock").take() {
            bar.finish_and_clear();
        }
    }
}
