//! The training loop: Burn's single-device loop, with checkpoints within an
//! epoch and a resume from one.
//!
//! Burn 0.22's `SingleDeviceTrainingStrategy` saves the run's state after
//! each epoch only, so a kill loses the epoch in progress, and its loop
//! cannot be entered part-way through an epoch; hence this copy of it, which
//! adds two things. After an optimiser step, when [`CheckpointEvery`] says
//! so, it saves the model, optimiser and scheduler into
//! `checkpoint/steps/` (the same checked files as the epoch sets, named by
//! the batches trained since the run began, [`crate::checkpoint`]). And a run
//! resumed from such a set skips the batches of its epoch already trained.
//! An epoch's order depends only on the seed and the epoch
//! ([`crate::shuffle`]), a set is saved only right after an optimiser step
//! (no gradients are being accumulated) and holds the scheduler, and the
//! model has no dropout, so the resumed run reaches the same weights as an
//! uninterrupted one, bit for bit.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use burn::optim::GradientsAccumulator;
use burn::tensor::Device;
use burn::train::checkpoint::{AsyncCheckpointer, CheckpointingAction, CheckpointingStrategy};
use burn::train::metric::store::EventStoreClient;
use burn::train::{
    EventProcessorTraining, InferenceStep, Interrupter, Learner, LearnerEvent, LearnerModel, LearningCheckpointer,
    SupervisedLearningStrategy, SupervisedTrainingEventProcessor, TrainLoader, TrainingComponents, TrainingError, TrainingItem,
    ValidLoader,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::checkpoint::{self, ResumePoint, SafeCheckpointer};

/// How often a run saves its state within an epoch (`checkpoint_every`,
/// `--checkpoint-every`): `N` optimiser steps, `Xm` minutes, or `0` for
/// never (after each epoch only).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CheckpointEvery {
    /// After every this many optimiser steps.
    Steps(usize),
    /// After the first optimiser step at least this many minutes after the
    /// run started or last saved.
    Minutes(f64),
    /// Only after each epoch.
    Never,
}

impl Default for CheckpointEvery {
    /// Every 5 minutes: a kill loses minutes of training, and the saves
    /// (a few hundred MB for a base-size encoder) cost little beside them.
    fn default() -> Self {
        CheckpointEvery::Minutes(5.0)
    }
}

impl FromStr for CheckpointEvery {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        let minutes = s.strip_suffix("min").or_else(|| s.strip_suffix('m'));
        match minutes {
            Some(m) => match m.trim().parse::<f64>() {
                Ok(m) if m.is_finite() && m > 0.0 => Ok(CheckpointEvery::Minutes(m)),
                _ => bail!("checkpoint_every: {s:?} is not a positive number of minutes (such as 5m)"),
            },
            None => match s.parse::<usize>() {
                Ok(0) => Ok(CheckpointEvery::Never),
                Ok(n) => Ok(CheckpointEvery::Steps(n)),
                Err(_) => bail!("checkpoint_every: {s:?} is neither a number of steps (200), minutes (5m) nor 0 (never)"),
            },
        }
    }
}

impl fmt::Display for CheckpointEvery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointEvery::Steps(n) => write!(f, "{n}"),
            CheckpointEvery::Minutes(m) => write!(f, "{m}m"),
            CheckpointEvery::Never => f.write_str("0"),
        }
    }
}

impl Serialize for CheckpointEvery {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CheckpointEvery {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Steps(usize),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Steps(n) => Ok(if n == 0 { CheckpointEvery::Never } else { CheckpointEvery::Steps(n) }),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// Saves every time it is asked: [`Saver`] decides when.
struct SaveAlways;

impl CheckpointingStrategy for SaveAlways {
    fn checkpointing(&mut self, _position: usize, _store: &EventStoreClient) -> Vec<CheckpointingAction> {
        vec![CheckpointingAction::Save]
    }
}

/// Saves the state within epochs when [`CheckpointEvery`] says so.
struct Saver<M: LearnerModel> {
    checkpointer: LearningCheckpointer<M>,
    every: CheckpointEvery,
    out: PathBuf,
    steps: usize,
    last: Instant,
}

impl<M: LearnerModel> Saver<M> {
    /// Called after each optimiser step that leaves the epoch unfinished,
    /// `position` batches into the run.
    fn after_step(&mut self, learner: &Learner<M>, position: usize, store: &EventStoreClient, interrupter: &Interrupter) {
        self.steps += 1;
        let due = match self.every {
            CheckpointEvery::Steps(n) => self.steps.is_multiple_of(n),
            CheckpointEvery::Minutes(m) => self.last.elapsed() >= Duration::from_secs_f64(m * 60.0),
            CheckpointEvery::Never => false,
        };
        if !due {
            return;
        }
        // Older sets go only once a newer one is complete, so that a kill
        // always leaves one to resume from.
        if let Err(e) = checkpoint::prune_steps(&self.out) {
            interrupter.fail(TrainingError::Checkpoint(checkpoint::io_error(e)));
            return;
        }
        self.checkpointer.checkpoint(learner, position, store);
        self.last = Instant::now();
    }
}

/// The single-device training loop with checkpoints within epochs; see the
/// module documentation.
pub struct StepCheckpointing {
    /// The autodiff device training runs on.
    pub device: Device,
    /// How often to save within an epoch.
    pub every: CheckpointEvery,
    /// The run directory.
    pub out: PathBuf,
    /// Batches in an epoch.
    pub per_epoch: usize,
    /// Where a resumed run continues; with batches into an epoch, the set
    /// saved there is loaded before training.
    pub resume: Option<ResumePoint>,
}

impl<M: LearnerModel> SupervisedLearningStrategy<M> for StepCheckpointing {
    fn fit(
        &self,
        components: TrainingComponents<M>,
        mut learner: Learner<M>,
        train: TrainLoader<M>,
        valid: ValidLoader<M>,
        _starting_epoch: usize,
    ) -> (M, SupervisedTrainingEventProcessor<M>) {
        let interrupter = components.interrupter.clone();
        let store = components.event_store.clone();
        let mut processor = components.event_processor;
        let mut epoch_checkpointer = components.checkpointer;
        let mut early_stopping = components.early_stopping;
        let [model, optim, scheduler] = match SafeCheckpointer::steps(&self.out) {
            Ok(set) => set,
            Err(e) => {
                interrupter.fail(TrainingError::Checkpoint(checkpoint::io_error(e)));
                return (learner.model(), processor);
            }
        };
        let mut saver = Saver {
            checkpointer: LearningCheckpointer::new(
                AsyncCheckpointer::new(model).with_interrupter(interrupter.clone()),
                AsyncCheckpointer::new(optim).with_interrupter(interrupter.clone()),
                AsyncCheckpointer::new(scheduler).with_interrupter(interrupter.clone()),
                Box::new(SaveAlways),
            ),
            every: self.every,
            out: self.out.clone(),
            steps: 0,
            last: Instant::now(),
        };
        let resume = self.resume.unwrap_or(ResumePoint { epochs: 0, batches: 0 });
        if resume.batches > 0 {
            learner = saver.checkpointer.load_checkpoint(learner, resume.position(self.per_epoch));
        }

        let train = train.to_device(&self.device);
        let valid = valid.to_device(&self.device.clone().inner());
        let (train_items, valid_items) = (train.num_items(), valid.num_items());
        learner.fork(&self.device);

        let mut skip = resume.batches;
        for epoch in resume.epochs + 1..=components.num_epochs {
            interrupter.fail_on_error(processor.process_train(LearnerEvent::StartSplit { epoch_number: epoch, total_items: train_items }));
            let context = EpochContext { epoch, interrupter: &interrupter, store: &store };
            self.train_epoch(&mut learner, &train, components.grad_accumulation, skip, &context, &mut processor, &mut saver);
            skip = 0;
            interrupter.fail_on_error(processor.process_train(LearnerEvent::EndSplit(epoch)));
            if interrupter.should_stop() {
                break;
            }

            interrupter.fail_on_error(processor.process_valid(LearnerEvent::StartSplit { epoch_number: epoch, total_items: valid_items }));
            validate(&learner, &valid, &context, &mut processor);
            interrupter.fail_on_error(processor.process_valid(LearnerEvent::EndSplit(epoch)));
            interrupter.fail_on_error(processor.process_train(LearnerEvent::EndEpoch(epoch)));
            if epoch_checkpointer.is_some() || early_stopping.is_some() {
                interrupter.fail_on_error(processor.flush());
            }
            if interrupter.should_stop() {
                break;
            }
            if let Some(checkpointer) = &mut epoch_checkpointer {
                checkpointer.checkpoint(&learner, epoch, &store);
            }
            if let Some(early_stopping) = &mut early_stopping
                && early_stopping.should_stop(epoch, &store)
            {
                break;
            }
        }
        // Waits for the saver's threads.
        drop(saver);
        (learner.model(), processor)
    }
}

/// What an epoch's loops report to.
struct EpochContext<'a> {
    epoch: usize,
    interrupter: &'a Interrupter,
    store: &'a EventStoreClient,
}

impl StepCheckpointing {
    /// One training epoch, skipping its first `skip` batches (trained before
    /// the checkpoint the run resumed from).
    #[allow(clippy::too_many_arguments)]
    fn train_epoch<M: LearnerModel>(
        &self,
        learner: &mut Learner<M>,
        loader: &TrainLoader<M>,
        accumulation: Option<usize>,
        skip: usize,
        context: &EpochContext<'_>,
        processor: &mut SupervisedTrainingEventProcessor<M>,
        saver: &mut Saver<M>,
    ) {
        let interrupter = context.interrupter;
        let mut iterator = loader.iter();
        let mut iteration = 0;
        let mut accumulator = GradientsAccumulator::new();
        let mut accumulated = 0;
        while let Some(item) = iterator.next() {
            let Some(item) = loaded(item, interrupter) else { break };
            iteration += 1;
            if iteration <= skip {
                continue;
            }
            let progress = iterator.progress();
            let output = learner.train_step(item);
            let stepped = match accumulation {
                Some(accumulation) => {
                    accumulator.accumulate(&learner.model(), output.grads);
                    accumulated += 1;
                    if accumulation <= accumulated || progress.is_completed() {
                        learner.lr_step();
                        learner.optimizer_step(accumulator.grads());
                        accumulated = 0;
                        true
                    } else {
                        false
                    }
                }
                None => {
                    learner.lr_step();
                    learner.optimizer_step(output.grads);
                    true
                }
            };
            let finished = progress.is_completed();
            let item = TrainingItem::new(output.item, progress, Some(iteration), Some(learner.lr_current()));
            interrupter.fail_on_error(processor.process_train(LearnerEvent::ProcessedItem(item)));
            if interrupter.should_stop() {
                break;
            }
            if stepped && !finished {
                let position = (context.epoch - 1) * self.per_epoch + iteration;
                saver.after_step(learner, position, context.store, interrupter);
            }
        }
    }
}

/// A batch from a loader; a loading error stops training through
/// `interrupter` (as in Burn's loops) and ends the epoch.
fn loaded<T, E: Into<TrainingError>>(item: Result<T, E>, interrupter: &Interrupter) -> Option<T> {
    item.map_err(|err| interrupter.fail(err)).ok()
}

/// One validation epoch, as Burn's.
fn validate<M: LearnerModel>(
    learner: &Learner<M>,
    loader: &ValidLoader<M>,
    context: &EpochContext<'_>,
    processor: &mut SupervisedTrainingEventProcessor<M>,
) {
    let interrupter = context.interrupter;
    let model = learner.model().valid();
    let mut iterator = loader.iter();
    let mut iteration = 0;
    while let Some(item) = iterator.next() {
        let Some(item) = loaded(item, interrupter) else { break };
        let progress = iterator.progress();
        iteration += 1;
        let item = InferenceStep::step(&model, item);
        let item = TrainingItem::new(item, progress, Some(iteration), None);
        interrupter.fail_on_error(processor.process_valid(LearnerEvent::ProcessedItem(item)));
        if interrupter.should_stop() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_every_reads_steps_minutes_and_never() {
        assert_eq!("200".parse::<CheckpointEvery>().unwrap(), CheckpointEvery::Steps(200));
        assert_eq!("2.5m".parse::<CheckpointEvery>().unwrap(), CheckpointEvery::Minutes(2.5));
        assert_eq!("10min".parse::<CheckpointEvery>().unwrap(), CheckpointEvery::Minutes(10.0));
        assert_eq!("0".parse::<CheckpointEvery>().unwrap(), CheckpointEvery::Never);
        for bad in ["", "-1", "0m", "NaNm", "often"] {
            let err = bad.parse::<CheckpointEvery>().unwrap_err().to_string();
            assert!(err.contains("checkpoint_every"), "{bad}: {err}");
        }
        for every in [CheckpointEvery::Steps(7), CheckpointEvery::Minutes(5.0), CheckpointEvery::Never] {
            let json = serde_json::to_string(&every).unwrap();
            assert_eq!(serde_json::from_str::<CheckpointEvery>(&json).unwrap(), every, "{json}");
        }
        assert_eq!(serde_json::from_str::<CheckpointEvery>("50").unwrap(), CheckpointEvery::Steps(50));
    }
}
