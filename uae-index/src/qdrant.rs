//! An index in Qdrant, the distributed vector database: `uae index push`
//! copies a uae index into a collection (cosine distance, sharded and
//! replicated as asked), and `uae search --qdrant` answers queries from it,
//! embedded by the index's own model.
//!
//! Each point's id is the UUIDv5 of its document id (in the URL namespace of
//! `uae:doc/<id>`), so a push is idempotent; the payload keeps the document
//! id, its title when the corpus is given, and the model's name and
//! fingerprint, which a resumed push and a search check. A push resumes by
//! batch: points are upserted in index order with `wait`, so the
//! collection's count says how many leading batches are in, and the batch
//! in flight at a kill is simply written again.

use std::collections::HashMap;

use anyhow::{Context, Result, anyhow, bail};
use qdrant_client::Qdrant;
use qdrant_client::qdrant::{
    CountPointsBuilder, CreateCollectionBuilder, Distance, PointStruct, ScrollPointsBuilder, SearchParamsBuilder,
    SearchPointsBuilder, UpsertPointsBuilder, Value, VectorParamsBuilder, value::Kind,
};

use uae_data::{Hit, Ranking};
use uae_model::encoder::{BiEncoder, TextRole};

use crate::corpus_index;
use crate::store::{ModelStamp, VectorStore, normalize};

/// Where a collection lives and how it is laid out.
#[derive(Debug, Clone)]
pub struct Collection {
    /// The server's gRPC address, e.g. `http://127.0.0.1:6334`.
    pub url: String,
    /// The collection's name.
    pub name: String,
}

/// How `uae index push` creates and fills a collection.
#[derive(Debug, Clone, Copy)]
pub struct PushOptions {
    /// Shards of a new collection.
    pub shards: u32,
    /// Copies of each shard.
    pub replicas: u32,
    /// Points per upsert.
    pub batch: usize,
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushReport {
    /// Points written by this push.
    pub written: usize,
    /// Points found already written (a resumed push).
    pub resumed: usize,
}

/// The point id of document `id`.
pub fn point_id(id: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, format!("uae:doc/{id}").as_bytes()).to_string()
}

/// A connection to one collection, on a tokio runtime of its own (uae's
/// commands and its inference thread are synchronous).
pub struct Client {
    runtime: tokio::runtime::Runtime,
    qdrant: Qdrant,
    collection: Collection,
}

impl Client {
    /// Connects to `collection`'s server (`QDRANT_API_KEY` is sent when set).
    pub fn connect(collection: &Collection) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let api_key = std::env::var("QDRANT_API_KEY").ok();
        let qdrant = Qdrant::from_url(&collection.url)
            .api_key(api_key)
            .skip_compatibility_check()
            .build()
            .with_context(|| format!("cannot reach Qdrant at {}", collection.url))?;
        Ok(Self { runtime, qdrant, collection: collection.clone() })
    }

    fn at(&self) -> String {
        format!("Qdrant collection {:?} at {}", self.collection.name, self.collection.url)
    }

    /// The model stamp of the collection's first point, if it has any.
    fn stamp(&self) -> Result<Option<ModelStamp>> {
        let name = &self.collection.name;
        let page = self
            .runtime
            .block_on(self.qdrant.scroll(ScrollPointsBuilder::new(name).limit(1).with_payload(true)))
            .with_context(|| format!("reading a point of {}", self.at()))?;
        Ok(page.result.first().map(|p| ModelStamp { name: text(&p.payload, "model"), fingerprint: text(&p.payload, "fingerprint") }))
    }

    /// The model the collection's points were embedded with (from their
    /// payload), or an error when it is empty.
    pub fn model(&self) -> Result<ModelStamp> {
        self.stamp()?.ok_or_else(|| anyhow!("{} has no points; push an index into it first", self.at()))
    }

    /// Refuses `encoder` (named `model_name`) unless it made the
    /// collection's vectors.
    pub fn check_model(&self, encoder: &BiEncoder, model_name: &str) -> Result<()> {
        let stamp = self.model()?;
        let ours = corpus_index::model_stamp(encoder, model_name)?;
        if ours.fingerprint != stamp.fingerprint {
            bail!(
                "{} holds vectors of model {} (fingerprint {}), not of {model_name} ({}); search it with the same model",
                self.at(),
                stamp.name,
                stamp.fingerprint,
                ours.fingerprint
            );
        }
        Ok(())
    }

    /// The best `k` documents for each of `queries`, embedded as queries by
    /// `encoder` (the collection's model, see [`Self::check_model`]): ids
    /// from the payload, cosine scores, in the one ranking order. With
    /// `exact`, Qdrant scans every point instead of its HNSW graph.
    pub fn search_texts(&self, encoder: &BiEncoder, queries: &[String], k: usize, batch_tokens: usize, exact: bool) -> Result<Vec<Ranking>> {
        let mut vectors = encoder.embed(queries, TextRole::Query, batch_tokens, |_| {})?.vectors;
        vectors.iter_mut().for_each(|v| normalize(v));
        self.search(&vectors, k, exact)
    }

    /// [`Self::search_texts`] for unit query vectors.
    fn search(&self, queries: &[Vec<f32>], k: usize, exact: bool) -> Result<Vec<Ranking>> {
        queries
            .iter()
            .map(|q| {
                let request = SearchPointsBuilder::new(&self.collection.name, q.clone(), k as u64)
                    .with_payload(true)
                    .params(SearchParamsBuilder::default().exact(exact));
                let response =
                    self.runtime.block_on(self.qdrant.search_points(request)).with_context(|| format!("searching {}", self.at()))?;
                let mut hits: Vec<Hit> = response.result.iter().map(|p| Hit::new(text(&p.payload, "id"), f64::from(p.score))).collect();
                uae_data::ranking::sort(&mut hits);
                Ok(hits)
            })
            .collect()
    }

    /// The number of points in the collection.
    pub fn count(&self) -> Result<usize> {
        let response = self
            .runtime
            .block_on(self.qdrant.count(CountPointsBuilder::new(&self.collection.name).exact(true)))
            .with_context(|| format!("counting the points of {}", self.at()))?;
        Ok(response.result.map_or(0, |r| r.count as usize))
    }
}

/// The string field `key` of a payload (empty when absent).
fn text(payload: &HashMap<String, Value>, key: &str) -> String {
    match payload.get(key).and_then(|v| v.kind.as_ref()) {
        Some(Kind::StringValue(s)) => s.clone(),
        _ => String::new(),
    }
}

/// Copies the index `store` into `collection`, creating it when missing
/// (cosine distance, `options.shards` shards of `options.replicas` copies),
/// `options.batch` points per upsert, resuming a killed push. `titles` maps
/// document ids to titles for the payload. A collection of another width
/// or model, or with more points than the index, is refused.
pub fn push(
    store: &VectorStore,
    collection: &Collection,
    options: PushOptions,
    titles: &HashMap<String, String>,
    mut progress: impl FnMut(usize),
) -> Result<PushReport> {
    let client = Client::connect(collection)?;
    let header = store.header();
    let name = &collection.name;
    let exists = client.runtime.block_on(client.qdrant.collection_exists(name)).with_context(|| format!("reaching {}", client.at()))?;
    if !exists {
        let create = CreateCollectionBuilder::new(name)
            .vectors_config(VectorParamsBuilder::new(header.dim as u64, Distance::Cosine))
            .shard_number(options.shards)
            .replication_factor(options.replicas);
        client.runtime.block_on(client.qdrant.create_collection(create)).with_context(|| format!("creating {}", client.at()))?;
    } else {
        let info = client.runtime.block_on(client.qdrant.collection_info(name)).with_context(|| format!("reading {}", client.at()))?;
        let size = info
            .result
            .and_then(|r| r.config)
            .and_then(|c| c.params)
            .and_then(|p| p.vectors_config)
            .and_then(|v| match v.config {
                Some(qdrant_client::qdrant::vectors_config::Config::Params(p)) => Some(p.size),
                _ => None,
            });
        if size.is_some_and(|s| s != header.dim as u64) {
            bail!("{} holds vectors of width {}, the index {}; push into another collection", client.at(), size.unwrap_or(0), header.dim);
        }
        if let Some(stamp) = client.stamp()?
            && stamp.fingerprint != header.model.fingerprint
        {
            bail!(
                "{} holds vectors of model {} (fingerprint {}), not of the index's {} ({}); push into another collection",
                client.at(),
                stamp.name,
                stamp.fingerprint,
                header.model.name,
                header.model.fingerprint
            );
        }
    }
    let present = client.count()?;
    if present > store.ids().len() {
        bail!("{} holds {present} points, more than the index's {}; push into another collection", client.at(), store.ids().len());
    }
    let batch = options.batch.max(1);
    let start = present / batch * batch;
    progress(start);
    let dim = header.dim;
    for first in (start..store.ids().len()).step_by(batch) {
        let end = (first + batch).min(store.ids().len());
        let points: Vec<PointStruct> = (first..end)
            .map(|row| {
                let id = &store.ids()[row];
                let mut payload = qdrant_client::Payload::new();
                payload.insert("id", id.as_str());
                if let Some(title) = titles.get(id) {
                    payload.insert("title", title.as_str());
                }
                payload.insert("model", header.model.name.as_str());
                payload.insert("fingerprint", header.model.fingerprint.as_str());
                PointStruct::new(point_id(id), store.vectors()[row * dim..(row + 1) * dim].to_vec(), payload)
            })
            .collect();
        client
            .runtime
            .block_on(client.qdrant.upsert_points(UpsertPointsBuilder::new(name, points).wait(true)))
            .with_context(|| format!("writing points {first}..{end} to {}", client.at()))?;
        progress(end - first);
    }
    Ok(PushReport { written: store.ids().len() - start, resumed: start })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_ids_are_stable_uuids() {
        assert_eq!(point_id("d1"), point_id("d1"));
        assert_ne!(point_id("d1"), point_id("d2"));
        assert_eq!(uuid::Uuid::parse_str(&point_id("d1")).unwrap().get_version_num(), 5);
    }
}
