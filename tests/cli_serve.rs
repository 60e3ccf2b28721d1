//! `uae serve` as a real process on an ephemeral loopback port, spoken to
//! over HTTP: its answers equal `uae embed`, `uae search` and `uae logprob`;
//! concurrent requests are batched; every error path answers its status with
//! a JSON error; a client that goes away disturbs no one; SIGTERM answers the
//! requests in flight.

use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};
use uae_test_support::cli::{stderr, uae};
use uae_test_support::serve::Server;
use uae_test_support::tiny_bert::{TinyBertSpec, write_tiny_bert};
use uae_test_support::tiny_llama::{TinyLlamaSpec, write_tiny_llama};

const TEXTS: [&str; 4] = [
    "why is python slow?",
    "a list is a mutable sequence of items",
    "How do I make an executable from a Python script?",
    "x",
];

fn tiny_bert(dir: &Path) -> String {
    write_tiny_bert(dir, &TinyBertSpec::default()).unwrap();
    dir.to_str().unwrap().into()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    let diff = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
    assert!(diff <= tol, "{what}: max difference {diff}");
}

/// `uae embed` of `texts` (as queries when `query`).
fn cli_embed(model: &str, texts: &[&str], query: bool, work: &Path) -> Vec<Vec<f32>> {
    let input = work.join("in.jsonl");
    let lines: String = texts.iter().enumerate().map(|(i, t)| format!("{}\n", json!({"id": i, "text": t}))).collect();
    std::fs::write(&input, lines).unwrap();
    let output = work.join("out.jsonl");
    let mut args = vec!["embed", "--model", model, "--input", input.to_str().unwrap(), "--output", output.to_str().unwrap()];
    if query {
        args.push("--query");
    }
    let out = uae(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::read_to_string(&output).unwrap().lines().map(|l| floats(&serde_json::from_str::<Value>(l).unwrap()["embedding"])).collect()
}

/// The real all-MiniLM-L6-v2 through `/embed` and `/v1/embeddings` equals
/// `uae embed`, and `/search` over an index it built equals `uae search`.
#[test]
fn answers_equal_the_command_line() {
    let Some(minilm) = uae_test_support::weights::minilm() else { return };
    let model = minilm.to_str().unwrap();
    let work = tempfile::tempdir().unwrap();
    let corpus = work.path().join("corpus.jsonl");
    let passages = [
        "Python is slow because it is interpreted and dynamically typed.",
        "Lists are mutable sequences; tuples are immutable.",
        "Use PyInstaller or cx_Freeze to make an executable.",
        "The GIL lets one thread run Python bytecode at a time.",
        "Dictionaries map keys to values.",
        "A generator yields values lazily.",
    ];
    let lines: String = passages.iter().enumerate().map(|(i, t)| format!("{}\n", json!({"_id": format!("p{i}"), "text": t}))).collect();
    std::fs::write(&corpus, lines).unwrap();
    let index = work.path().join("index");
    let built = uae(&["index", "build", "--model", model, "--corpus", corpus.to_str().unwrap(), "--out", index.to_str().unwrap()]);
    assert!(built.status.success(), "{}", stderr(&built));

    let server = Server::start(&["--model", model, "--index", index.to_str().unwrap()]);
    let passages_cli = cli_embed(model, &TEXTS, false, work.path());
    let queries_cli = cli_embed(model, &TEXTS, true, work.path());
    let tei = server.post("/embed", &json!({"inputs": TEXTS}));
    assert_eq!(tei.status, 200, "{}", tei.body);
    for (got, want) in tei.json().as_array().unwrap().iter().zip(&passages_cli) {
        assert_close(&floats(got), want, 1e-6, "/embed");
    }
    let one = server.post("/embed", &json!({"inputs": TEXTS[2], "prompt_name": "query"}));
    assert_close(&floats(&one.json()[0]), &queries_cli[2], 1e-6, "/embed one query");
    let openai = server.post("/v1/embeddings", &json!({"input": TEXTS, "model": "anything"})).json();
    assert_eq!(openai["object"], "list");
    assert_eq!(openai["model"], model);
    assert!(openai["usage"]["prompt_tokens"].as_u64().unwrap() > TEXTS.len() as u64);
    for (i, (item, want)) in openai["data"].as_array().unwrap().iter().zip(&passages_cli).enumerate() {
        assert_eq!(item["index"], i);
        assert_close(&floats(&item["embedding"]), want, 1e-6, "/v1/embeddings");
    }
    // base64 is the same floats, little-endian; `dimensions` keeps a
    // renormalised prefix.
    let b64 = server.post("/v1/embeddings", &json!({"input": TEXTS[0], "encoding_format": "base64", "dimensions": 8})).json();
    let bytes = base64_decode(b64["data"][0]["embedding"].as_str().unwrap());
    let short: Vec<f32> = bytes.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    let norm = passages_cli[0][..8].iter().map(|x| x * x).sum::<f32>().sqrt();
    let want: Vec<f32> = passages_cli[0][..8].iter().map(|x| x / norm).collect();
    assert_close(&short, &want, 1e-6, "base64 with dimensions 8");

    let queries = ["why is my program slow", "how do I ship an exe"];
    let found = server.post("/search", &json!({"queries": queries, "k": 3})).json();
    for (query, hits) in queries.iter().zip(found["results"].as_array().unwrap()) {
        let out = uae(&["search", "--index", index.to_str().unwrap(), "--query", query, "-k", "3"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let cli: Vec<(String, f64)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f[2].to_string(), f[1].parse().unwrap())
            })
            .collect();
        let hits = hits.as_array().unwrap();
        assert_eq!(hits.len(), 3);
        for ((id, score), hit) in cli.iter().zip(hits) {
            assert_eq!(hit["id"], id.as_str(), "{query}");
            assert!((hit["score"].as_f64().unwrap() - score).abs() < 2e-6, "{query}: {hit} against {score}");
        }
    }
    let info = server.get("/info").json();
    assert_eq!(info["dimension"], 384);
    assert_eq!(info["index"]["size"], passages.len());
    assert_eq!(info["max_input_length"], 256);

    // An index built by another model is refused at start-up.
    let other = tiny_bert(&work.path().join("tiny"));
    let (status, log) = Server::fail(&["--model", &other, "--index", index.to_str().unwrap()]);
    assert!(!status.success());
    assert!(log.contains("cannot be searched with --model"), "{log}");
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|&c| c != b'=') {
        bits = (bits << 6) | ALPHABET.iter().position(|&a| a == c).unwrap() as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

/// 64 concurrent requests are all answered with their own vectors, and
/// `/metrics` shows batches of more than one request.
#[test]
fn concurrent_requests_are_batched_and_answered_correctly() {
    let work = tempfile::tempdir().unwrap();
    let model = tiny_bert(&work.path().join("model"));
    let server = Server::start(&["--model", &model]);
    let texts: Vec<String> = (0..64).map(|i| format!("question number {i} about {}", "python ".repeat(i % 9 + 1))).collect();
    let single: Vec<Vec<f32>> =
        texts.iter().map(|t| floats(&server.post("/embed", &json!({"inputs": t})).json()[0])).collect();
    let answers: Vec<Vec<f32>> = std::thread::scope(|scope| {
        let server = &server;
        let handles: Vec<_> = texts.iter().map(|t| scope.spawn(move || server.post("/embed", &json!({"inputs": [t]})))).collect();
        handles
            .into_iter()
            .map(|h| {
                let reply = h.join().unwrap();
                assert_eq!(reply.status, 200, "{}", reply.body);
                floats(&reply.json()[0])
            })
            .collect()
    });
    for (i, (got, want)) in answers.iter().zip(&single).enumerate() {
        assert_close(got, want, 1e-6, &format!("request {i}"));
    }
    let metrics = server.get("/metrics").body;
    let value = |name: &str| -> f64 {
        metrics.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok()).unwrap_or(-1.0)
    };
    let batches = value("uae_batch_requests_count");
    let requests = value("uae_batch_requests_sum");
    assert!(batches > 0.0 && requests > batches, "128 requests in {batches} batches: some batch holds more than one\n{metrics}");
    assert!(requests == 128.0, "every request went through a batch: {requests}\n{metrics}");
    assert!(metrics.contains("uae_requests_total{route=\"/embed\",status=\"200\"} 128"), "{metrics}");
    assert!(metrics.contains("uae_request_duration_seconds_bucket"), "{metrics}");
}

/// Every refusal has its status and a JSON error that says why.
#[test]
fn errors_answer_their_status_with_a_json_reason() {
    let work = tempfile::tempdir().unwrap();
    let model = tiny_bert(&work.path().join("model"));
    let server = Server::start(&["--model", &model, "--api-key", "sesame", "--payload-limit", "4096", "--max-input-length", "16"]);
    let auth = [("Authorization", "Bearer sesame")];
    let body = json!({"inputs": "hello"}).to_string();
    assert_eq!(server.get("/health").status, 200, "/health needs no key");
    let denied = server.post_with("/embed", &body, &[]);
    assert_eq!((denied.status, denied.json()["error_type"].as_str()), (401, Some("unauthorized")));
    assert_eq!(server.post_with("/embed", &body, &[("Authorization", "Bearer wrong")]).status, 401);
    assert_eq!(server.post_with("/embed", &body, &auth).status, 200);

    let huge = json!({"inputs": "word ".repeat(2000)}).to_string();
    let too_big = server.post_with("/embed", &huge, &auth);
    assert_eq!(too_big.status, 413, "{}", too_big.body);
    assert!(too_big.json()["error"].as_str().unwrap().contains("4096 bytes"), "{}", too_big.body);
    let long = json!({"inputs": ["short", "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"]});
    let too_long = server.post_with("/embed", &long.to_string(), &auth);
    assert_eq!(too_long.status, 413, "{}", too_long.body);
    assert!(too_long.json()["error"].as_str().unwrap().contains("inputs[1] is longer than the maximum input length of 16"));
    let mut truncated = long.clone();
    truncated["truncate"] = json!(true);
    assert_eq!(server.post_with("/embed", &truncated.to_string(), &auth).status, 200);

    for (path, body, field) in [
        ("/embed", json!({"inputs": 5}), "inputs"),
        ("/embed", json!({"text": "no inputs"}), "inputs"),
        ("/embed", json!({"inputs": "a", "prompt_name": "title"}), "prompt_name"),
        ("/embed", json!({"inputs": []}), "inputs"),
        ("/v1/embeddings", json!({"input": "a", "dimensions": 999}), "dimensions"),
        ("/v1/embeddings", json!({"input": "a", "encoding_format": "int8"}), "encoding_format"),
        ("/v1/embeddings", json!({"input": [1, 2]}), "input"),
    ] {
        let reply = server.post_with(path, &body.to_string(), &auth);
        assert_eq!(reply.status, 422, "{path} {body}: {}", reply.body);
        let error = reply.json();
        assert_eq!(error["error_type"], "validation");
        assert!(error["error"].as_str().unwrap().contains(field), "{path} {body}: {error}");
    }
    let syntax = server.post_with("/embed", "{\"inputs\": [", &auth);
    assert_eq!(syntax.status, 422, "{}", syntax.body);
    let no_index = server.post_with("/search", &json!({"query": "a"}).to_string(), &auth);
    assert_eq!(no_index.status, 404, "{}", no_index.body);
    assert!(no_index.json()["error"].as_str().unwrap().contains("--index"));
    let no_teacher = server.post_with("/v1/completions", &json!({"prompt": "a"}).to_string(), &auth);
    assert_eq!(no_teacher.status, 404, "{}", no_teacher.body);

    // A refusal sent before the body is read to its end closes the
    // connection and says so (`Connection: close`), so that a keep-alive
    // client does not send its next request into the closing socket: the
    // 401 to a request whose body has not been sent, the 413 to one larger
    // than the limit.
    for (status, authorization, body) in [(401, "", String::new()), (413, "Authorization: Bearer sesame\r\n", "x".repeat(5000))] {
        let mut stream = std::net::TcpStream::connect(server.addr()).unwrap();
        stream.set_read_timeout(Some(std::time::Duration::from_secs(60))).unwrap();
        write!(stream, "POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{authorization}Content-Length: 5000\r\n\r\n{body}").unwrap();
        let mut reader = std::io::BufReader::new(stream);
        let head: Vec<String> = std::io::BufRead::lines(&mut reader)
            .map(|line| line.unwrap().to_ascii_lowercase())
            .take_while(|line| !line.is_empty())
            .collect();
        assert!(head[0].starts_with(&format!("http/1.1 {status}")), "{head:?}");
        assert!(head.iter().any(|line| line == "connection: close"), "{head:?}");
    }
}

/// With one request admitted at a time, a burst gets 429 for the requests
/// beyond it while the admitted ones are answered; a client that sends a
/// request and disconnects disturbs no one.
#[test]
fn overload_answers_429_and_a_vanished_client_is_harmless() {
    let work = tempfile::tempdir().unwrap();
    let model = tiny_bert(&work.path().join("model"));
    let server = Server::start(&["--model", &model, "--max-concurrent-requests", "1"]);
    let long: Vec<String> = (0..64).map(|i| format!("text {i} {}", "lorem ipsum dolor sit amet ".repeat(20))).collect();
    let body = json!({"inputs": long, "truncate": true}).to_string();
    let mut saw_429 = false;
    for _ in 0..20 {
        let statuses: Vec<u16> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8).map(|_| scope.spawn(|| server.post_with("/embed", &body, &[]))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).map(|r| {
                if r.status == 429 {
                    assert_eq!(r.json()["error_type"], "overloaded", "{}", r.body);
                }
                r.status
            }).collect()
        });
        assert!(statuses.iter().all(|s| *s == 200 || *s == 429), "{statuses:?}");
        assert!(statuses.contains(&200), "someone is served: {statuses:?}");
        if statuses.contains(&429) {
            saw_429 = true;
            break;
        }
    }
    assert!(saw_429, "eight requests at once against one slot never got 429");

    // A client that sends a long request and hangs up at once.
    for _ in 0..4 {
        let mut stream = std::net::TcpStream::connect(server.addr()).unwrap();
        write!(stream, "POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        drop(stream);
    }
    // The one slot may still be held by a vanished client's request; it is
    // freed once that is done, and the server answers again.
    let start = std::time::Instant::now();
    let reply = loop {
        let reply = server.post("/embed", &json!({"inputs": "still here"}));
        if reply.status != 429 || start.elapsed().as_secs() > 60 {
            break reply;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(server.get("/health").body, "ok");
}

/// SIGTERM while requests are in flight: each is answered, then the process
/// exits cleanly.
#[test]
fn sigterm_answers_requests_in_flight() {
    let work = tempfile::tempdir().unwrap();
    let model = tiny_bert(&work.path().join("model"));
    let server = Server::start(&["--model", &model]);
    let texts: Vec<String> = (0..200).map(|i| format!("text {i} {}", "lorem ipsum dolor sit amet ".repeat(20))).collect();
    let body = json!({"inputs": texts, "truncate": true}).to_string();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4).map(|_| scope.spawn(|| server.post_with("/embed", &body, &[]))).collect();
        // Wait until the server holds requests, then ask it to stop.
        let start = std::time::Instant::now();
        loop {
            let metrics = server.get("/metrics").body;
            let depth = metrics.lines().find(|l| l.starts_with("uae_queue_depth")).and_then(|l| l.rsplit(' ').next()?.parse::<i64>().ok());
            if depth.unwrap_or(0) >= 4 || start.elapsed().as_secs() > 30 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        server.terminate();
        handles.into_iter().map(|h| h.join().unwrap().status).collect()
    });
    assert_eq!(statuses, [200; 4]);
    let (status, log) = server.wait();
    assert!(status.success(), "{log}");
    assert!(log.contains("every request in flight was answered"), "{log}");
}

/// With a teacher, `/v1/completions` returns prompt log-probabilities equal
/// to `uae logprob` and a greedy completion whose tokens are the most likely.
#[test]
fn completions_score_prompts_like_uae_logprob() {
    let work = tempfile::tempdir().unwrap();
    let model = tiny_bert(&work.path().join("model"));
    let teacher = work.path().join("teacher");
    write_tiny_llama(&teacher, &TinyLlamaSpec { hidden: 64, layers: 2, max_positions: 128, ..Default::default() }).unwrap();
    let teacher = teacher.to_str().unwrap();
    let server = Server::start(&["--model", &model, "--teacher", teacher]);
    let (prompt, continuation) = ("the answer to question 3 is", " on line 3");
    let input = work.path().join("lp.jsonl");
    std::fs::write(&input, format!("{}\n", json!({"id": 0, "prompt": prompt, "continuation": continuation}))).unwrap();
    let output = work.path().join("lp.out.jsonl");
    let out = uae(&["logprob", "--teacher", teacher, "--input", input.to_str().unwrap(), "--output", output.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let line: Value = serde_json::from_str(std::fs::read_to_string(&output).unwrap().trim()).unwrap();
    let (want_sum, n) = (line["logprob_sum"].as_f64().unwrap(), line["n_tokens"].as_u64().unwrap() as usize);

    let text = format!("{prompt}{continuation}");
    let reply = server.post("/v1/completions", &json!({"prompt": text, "max_tokens": 0, "echo": true, "logprobs": 1, "temperature": 0}));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    let choice = &body["choices"][0];
    assert_eq!(choice["text"], text.as_str());
    let logprobs = &choice["logprobs"];
    let token_logprobs = logprobs["token_logprobs"].as_array().unwrap();
    assert!(token_logprobs[0].is_null(), "the first token has no context");
    let tokens = logprobs["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), token_logprobs.len());
    let got: f64 = token_logprobs[tokens.len() - n..].iter().map(|v| v.as_f64().unwrap()).sum();
    assert!((got - want_sum).abs() < 1e-4, "continuation log-probability {got} against uae logprob's {want_sum}");
    let offsets: Vec<usize> = logprobs["text_offset"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    let joined: String = tokens.iter().map(|t| t.as_str().unwrap()).collect();
    assert_eq!(joined, text, "the tokens spell the prompt");
    assert_eq!(offsets[tokens.len() - n], prompt.chars().count(), "the continuation starts where the prompt ends");
    assert_eq!(body["usage"]["prompt_tokens"], tokens.len());

    // Greedy generation: each generated token is the top token of its position.
    let reply = server.post("/v1/completions", &json!({"prompt": [prompt, "x"], "max_tokens": 4, "logprobs": 1}));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["choices"].as_array().unwrap().len(), 2);
    let choice = &body["choices"][0];
    let logprobs = &choice["logprobs"];
    for (token, (lp, top)) in logprobs["tokens"].as_array().unwrap().iter().zip(
        logprobs["token_logprobs"].as_array().unwrap().iter().zip(logprobs["top_logprobs"].as_array().unwrap()),
    ) {
        let best = top.as_object().unwrap();
        assert_eq!(best.len(), 1);
        let (best_token, best_lp) = best.iter().next().unwrap();
        assert_eq!(best_token, token.as_str().unwrap());
        assert!((best_lp.as_f64().unwrap() - lp.as_f64().unwrap()).abs() < 1e-6);
    }
    let generated = logprobs["tokens"].as_array().unwrap().len();
    assert!(generated <= 4 && body["usage"]["completion_tokens"].as_u64().unwrap() as usize >= generated);
    // Sampling: the same seed gives the same text, and the draws leave the
    // greedy path of this random model.
    let sampled = |seed: u64| {
        let body = json!({"prompt": text, "max_tokens": 8, "temperature": 1.0, "top_p": 0.95, "seed": seed});
        let reply = server.post("/v1/completions", &body);
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()["choices"][0]["text"].as_str().unwrap().to_string()
    };
    let greedy = server.post("/v1/completions", &json!({"prompt": text, "max_tokens": 8})).json()["choices"][0]["text"].clone();
    assert_eq!(sampled(5), sampled(5));
    assert!((0..4).any(|seed| json!(sampled(seed)) != greedy), "sampling at temperature 1 leaves the greedy path");
    for (body, field) in [
        (json!({"prompt": "a", "temperature": -0.5}), "temperature"),
        (json!({"prompt": "a", "temperature": 0.7, "top_p": 0}), "top_p"),
        (json!({"prompt": "a", "logprobs": 5}), "logprobs"),
        (json!({"prompt": "a", "stop": ["\n"]}), "stop"),
        (json!({"prompt": "a", "max_tokens": 1000}), "max_tokens"),
    ] {
        let reply = server.post("/v1/completions", &body);
        assert_eq!(reply.status, 422, "{body}: {}", reply.body);
        assert!(reply.json()["error"].as_str().unwrap().contains(field), "{body}: {}", reply.body);
    }
    assert_eq!(server.get("/info").json()["teacher"]["context_length"], 128);
}
