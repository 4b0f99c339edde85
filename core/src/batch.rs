//! Batch loads: many keys read at once, and one loader call for exactly the keys no layer could
//! answer.
//!
//! Each key goes through [`Cache::fetch`] as if read alone, so every layer applies per key (L1,
//! L2, single flight with concurrent readers of the same key, the fleet lock, stale values,
//! negative caching). What differs is the loader each key's flight gets: instead of loading its
//! key, it registers the key with a gate shared by the call and waits for one batch. The gate
//! counts the keys still undecided: a key is decided when its flight calls its loader (it joins
//! the batch) or when its read ends without calling it (a hit, or another caller's flight). When
//! none is undecided, the batch loader is called once with the keys that joined. A key whose
//! loader runs later (a refresh in the background after a stale value was served) is loaded in
//! a call of its own, so nothing waits for a batch that has already gone.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures::channel::oneshot;
use futures::future::{self, BoxFuture, FutureExt, Shared};

use crate::cache::Cache;
use crate::error::{ConfigProblem, Error, LoaderError, Result};
use crate::fetch::{FetchOptions, Fetched, Loaded};
use crate::sync::{lock, Mutex};

type Found<V> = std::result::Result<Arc<HashMap<String, V>>, LoaderError>;
type Batch<V> = Shared<BoxFuture<'static, Found<V>>>;
type Call<V> = Arc<dyn Fn(Vec<String>) -> BoxFuture<'static, Found<V>> + Send + Sync>;

/// The keys of one `fetch_many` call that are still undecided, and those that joined the batch.
struct Gate {
    undecided: usize,
    joined: Vec<String>,
    /// Sends the joined keys to the batch; taken when it starts.
    start: Option<oneshot::Sender<Vec<String>>>,
}

impl Gate {
    /// One key is decided (`joined`: it waits for the batch). Returns false when the batch has
    /// already started, so the key must be loaded alone.
    fn decide(&mut self, joined: Option<&str>) -> bool {
        if self.start.is_none() {
            return false;
        }
        if let Some(k) = joined {
            self.joined.push(k.to_string());
        }
        self.undecided -= 1;
        if self.undecided == 0 {
            let keys = std::mem::take(&mut self.joined);
            if let Some(tx) = self.start.take() {
                if !keys.is_empty() {
                    let _ = tx.send(keys);
                }
            }
        }
        true
    }
}

/// The loader handed to one key's flight: joins the batch when called, and when dropped
/// without being called (the key was answered otherwise) tells the gate it is decided.
struct Member<V> {
    key: String,
    gate: Arc<Mutex<Gate>>,
    batch: Batch<V>,
    call: Call<V>,
    decided: bool,
}

impl<V: Clone + Send + Sync + 'static> Member<V> {
    fn load(mut self) -> BoxFuture<'static, std::result::Result<Loaded<V>, LoaderError>> {
        self.decided = true;
        let key = std::mem::take(&mut self.key);
        let in_batch = lock(&self.gate).decide(Some(&key));
        let found = if in_batch { self.batch.clone().boxed() } else { (self.call)(vec![key.clone()]) };
        async move {
            let found = found.await?;
            Ok(found.get(&key).cloned().map_or(Loaded::NotFound, Loaded::Value))
        }
        .boxed()
    }
}

impl<V> Drop for Member<V> {
    fn drop(&mut self) {
        if !self.decided {
            lock(&self.gate).decide(None);
        }
    }
}

impl<V: Clone + Send + Sync + 'static> Cache<V> {
    /// What [`Cache::fetch_many`] refuses before it reads anything (the options, a key over
    /// `max_key_len`, more than `max_in_flight` distinct keys), checked without reading: a host
    /// whose call returns a future checks with it when called, not when awaited.
    pub fn check_fetch_many<K: AsRef<str>>(&self, keys: &[K], opts: &FetchOptions) -> Result<()> {
        self.distinct_keys(keys, opts).map(drop)
    }

    /// The distinct keys of a `fetch_many` call, in order, once its checks pass.
    fn distinct_keys<'k, K: AsRef<str>>(&self, keys: &'k [K], opts: &FetchOptions) -> Result<Vec<&'k str>> {
        opts.check()?;
        let mut distinct: Vec<&str> = Vec::with_capacity(keys.len());
        let mut seen = hashbrown::HashSet::with_capacity(keys.len());
        for k in keys {
            let k = k.as_ref();
            self.inner.store.check_key(k)?;
            if seen.insert(k) {
                distinct.push(k);
            }
        }
        let max = self.inner.settings.max_in_flight;
        if distinct.len() > max {
            return Err(Error::invalid_config(
                "keys",
                ConfigProblem::MustNotExceed("max_in_flight"),
                Some(distinct.len() as f64),
            ));
        }
        Ok(distinct)
    }

    /// Reads many keys at once: each is answered as [`Cache::fetch`] would (every layer, per
    /// key), and the keys none of them could answer are loaded by **one** call of `loader`,
    /// which gets those keys and returns the values it found; a key it leaves out is "not
    /// found" (cached as such when negative caching is on). The answers come in the order of
    /// `keys` (a key given twice is read once and answered twice).
    ///
    /// At most `max_in_flight` distinct keys per call (each may need a load of its own); more is
    /// refused with [`Error::InvalidConfig`] (field `keys`), as is any key over `max_key_len`
    /// ([`Error::KeyTooLong`]), before anything is read. A loader error reaches every key that
    /// waited for it (as [`Error::Loader`]), and the call returns the first error of any key.
    ///
    /// ```
    /// use healcache::{Cache, FetchOptions};
    /// use std::collections::HashMap;
    /// # futures::executor::block_on(async {
    /// let cache = Cache::<u64>::builder().build().unwrap();
    /// cache.set("a", 1).unwrap();
    /// let load = |keys: Vec<String>| async move {
    ///     assert_eq!(keys, ["b"]); // "a" was in the cache, "b" is loaded, alone
    ///     Ok::<_, std::io::Error>(HashMap::from([("b".to_string(), 2)]))
    /// };
    /// let got = cache.fetch_many(&["a", "b"], FetchOptions::default(), load).await.unwrap();
    /// assert_eq!(got.iter().map(|f| f.value).collect::<Vec<_>>(), [Some(1), Some(2)]);
    /// # });
    /// ```
    pub async fn fetch_many<K, F, Fut, E>(&self, keys: &[K], opts: FetchOptions, loader: F) -> Result<Vec<Fetched<V>>>
    where
        K: AsRef<str>,
        F: Fn(Vec<String>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<HashMap<String, V>, E>> + Send + 'static,
        E: Into<LoaderError>,
    {
        let distinct = self.distinct_keys(keys, &opts)?;
        let loader = Arc::new(loader);
        let call: Call<V> = Arc::new(move |keys| {
            let fut = loader(keys);
            async move { fut.await.map(Arc::new).map_err(Into::into) }.boxed()
        });
        let (tx, rx) = oneshot::channel::<Vec<String>>();
        let first = Arc::clone(&call);
        let batch: Batch<V> = async move {
            match rx.await {
                Ok(keys) => first(keys).await,
                // every key was answered without the batch: nobody waits for this
                Err(_) => Ok(Arc::new(HashMap::new())),
            }
        }
        .boxed()
        .shared();
        let gate = Arc::new(Mutex::new(Gate { undecided: distinct.len(), joined: Vec::new(), start: Some(tx) }));
        let reads = distinct.iter().map(|&key| {
            let member = Member {
                key: key.to_string(),
                gate: Arc::clone(&gate),
                batch: batch.clone(),
                call: Arc::clone(&call),
                decided: false,
            };
            self.fetch(key, opts, move || member.load())
        });
        let answers = future::join_all(reads).await;
        let mut by_key: HashMap<&str, Fetched<V>> = HashMap::with_capacity(distinct.len());
        for (k, a) in distinct.iter().zip(answers) {
            by_key.insert(k, a?);
        }
        Ok(keys.iter().map(|k| by_key[k.as_ref()].clone()).collect())
    }
}
