//! Packing a tree and every store path it refers to, recursively, and making each
//! content-addressed, dependencies first, as `nix store make-content-addressed` does.

use std::collections::HashMap;
use std::io;
use std::path::Path;

use crate::cache::{self, PackOptions, PackedNar};
use crate::nix::nar::{HashModulo, HashPart, RefScanner, Rewriter};
use crate::nix::{STORE_PREFIX, StorePath};

use super::{BuiltAs, ClosureError, Input, KnownPaths, PackedPath};

/// A packed tree and what its scan found.
pub(super) struct Node {
    pub(super) input: Input,
    pub(super) pass1: PackedNar,
    pub(super) self_reference: bool,
    pub(super) refs: Vec<usize>,
}

/// Packs `top` and every store path it needs (found in `known`) into content-addressed
/// store paths in `tmp_dir`, dependencies first, `top` last.
pub fn pack_closure(
    top: &Input,
    known: &KnownPaths,
    opts: &PackOptions,
    tmp_dir: &Path,
    cancelled: &dyn Fn() -> bool,
) -> Result<Vec<PackedPath>, ClosureError> {
    // Pass 1: pack and scan each path once, following references.
    let mut nodes: Vec<Node> = Vec::new();
    let mut index: HashMap<HashPart, usize> = HashMap::new();
    let mut found_refs: Vec<Vec<HashPart>> = Vec::new();
    let mut queue = vec![top.clone()];
    while let Some(input) = queue.pop() {
        if cancelled() {
            return Err(ClosureError::Cancelled);
        }
        let own = input.built_as.hash;
        let mut scanner = RefScanner::new(known.hashes().chain([own]));
        let pass1 = cache::pack_path_scanning(&input.tree, opts, tmp_dir, &mut scanner)?;
        let found = scanner.into_found();
        let self_reference = found.contains(&own);
        let mut refs: Vec<HashPart> = found.into_iter().filter(|h| *h != own).collect();
        refs.sort_unstable();
        for h in &refs {
            if !index.contains_key(h) && !queue.iter().any(|q| q.built_as.hash == *h) {
                let p = known.get(h).expect("found hashes are known or own");
                queue.push(Input {
                    tree: known.location(p),
                    built_as: BuiltAs::of_store_path(p),
                });
            }
        }
        index.insert(own, nodes.len());
        found_refs.push(refs);
        nodes.push(Node {
            input,
            pass1,
            self_reference,
            refs: Vec::new(),
        });
    }
    for (node, refs) in nodes.iter_mut().zip(&found_refs) {
        node.refs = refs.iter().map(|h| index[h]).collect();
    }
    let order = dependencies_first(&nodes)?;

    // Then, dependencies first: rewrite references, hash modulo self, rewrite self.
    let built_as: Vec<String> = nodes.iter().map(|n| n.input.built_as.path()).collect();
    let mut finals: Vec<Option<StorePath>> = (0..nodes.len()).map(|_| None).collect();
    let mut nodes: Vec<Option<Node>> = nodes.into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(order.len());
    for i in order {
        if cancelled() {
            return Err(ClosureError::Cancelled);
        }
        let node = nodes[i].take().expect("each node once");
        let refs: Vec<(String, StorePath)> = node
            .refs
            .iter()
            .map(|&r| {
                let new = finals[r].clone().expect("dependencies come first");
                (built_as[r].clone(), new)
            })
            .collect();
        let packed = make_content_addressed(node, &refs, opts, tmp_dir)?;
        finals[i] = Some(packed.store_path.clone());
        out.push(packed);
    }
    Ok(out)
}

/// Node indices in an order where every node comes after the nodes it refers to.
fn dependencies_first(nodes: &[Node]) -> Result<Vec<usize>, ClosureError> {
    let refs: Vec<&[usize]> = nodes.iter().map(|n| n.refs.as_slice()).collect();
    order_dependencies_first(&refs, |i| nodes[i].input.built_as.path())
}

/// Indices `0..refs.len()` in an order where each comes after the ones it refers to;
/// `name(i)` names one in the error about a cycle.
pub(super) fn order_dependencies_first(
    refs: &[&[usize]],
    name: impl Fn(usize) -> String,
) -> Result<Vec<usize>, ClosureError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut mark = vec![Mark::New; refs.len()];
    let mut order = Vec::with_capacity(refs.len());
    // Iterative DFS, post-order.
    for start in 0..refs.len() {
        if mark[start] != Mark::New {
            continue;
        }
        let mut stack = vec![(start, 0usize)];
        mark[start] = Mark::Active;
        while let Some((n, next)) = stack.pop() {
            if let Some(&r) = refs[n].get(next) {
                stack.push((n, next + 1));
                match mark[r] {
                    Mark::New => {
                        mark[r] = Mark::Active;
                        stack.push((r, 0));
                    }
                    Mark::Active => {
                        return Err(ClosureError::Cycle(format!("{} and {}", name(n), name(r))));
                    }
                    Mark::Done => {}
                }
            } else {
                mark[n] = Mark::Done;
                order.push(n);
            }
        }
    }
    Ok(order)
}

/// Makes one path content-addressed; `refs` are its references as (the path string they
/// had when it was built, their final path).
pub(super) fn make_content_addressed(
    node: Node,
    refs: &[(String, StorePath)],
    opts: &PackOptions,
    tmp_dir: &Path,
) -> Result<PackedPath, ClosureError> {
    let b = &node.input.built_as;
    let new_refs: Vec<StorePath> = refs.iter().map(|(_, new)| new.clone()).collect();
    let mut rewrites: Vec<(Vec<u8>, Vec<u8>)> = refs
        .iter()
        .map(|(old, new)| (old.clone().into_bytes(), new.to_string().into_bytes()))
        .filter(|(old, new)| old != new)
        .collect();
    let was = b.path();
    if !node.self_reference && rewrites.is_empty() {
        // Nothing to rewrite: the first packing is final; its address is its NAR hash.
        let ca_hash = node.pass1.summary.nar.nar_hash;
        let store_path = StorePath::from_ca(&ca_hash, &b.name, &new_refs, false)?;
        return Ok(PackedPath {
            store_path,
            was,
            packed: node.pass1,
            ca_hash,
            references: new_refs,
            self_reference: false,
        });
    }
    if !node.self_reference {
        // Its address is the hash of the NAR with its references rewritten: one pass. The
        // own hash part is watched for (as itself): should a rewrite have made it appear,
        // Nix would hash modulo it, so the staged way below decides.
        let mut own_appeared = false;
        let packed = cache::pack_nar_with(opts, tmp_dir, |w| {
            let mut nar = cache::unpacked_reader(&node.pass1).map_err(io::Error::other)?;
            let own = Some((b.hash.to_vec(), b.hash.to_vec()));
            let mut rw = Rewriter::new(w, rewrites.clone(), own);
            io::copy(&mut nar, &mut rw)?;
            own_appeared = !rw.finish()?.1.is_empty();
            Ok(())
        })?;
        if !own_appeared {
            let ca_hash = packed.summary.nar.nar_hash;
            let store_path = StorePath::from_ca(&ca_hash, &b.name, &new_refs, false)?;
            return Ok(PackedPath {
                store_path,
                was,
                packed,
                ca_hash,
                references: new_refs,
                self_reference: false,
            });
        }
    }
    if node.self_reference && b.prefix != STORE_PREFIX {
        // Where the output was built becomes /nix/store/ (same length).
        let own = String::from_utf8_lossy(&b.hash).into_owned();
        rewrites.push((
            format!("{}{own}", b.prefix).into_bytes(),
            format!("{STORE_PREFIX}{own}").into_bytes(),
        ));
    }
    // Pass 2: the hash modulo the own hash part, after the reference rewrites.
    let mut modulo = HashModulo::new(&b.hash, rewrites.clone());
    let mut nar = cache::unpacked_reader(&node.pass1)?;
    io::copy(&mut nar, &mut modulo).map_err(|e| io_error(&node, e))?;
    let (ca_hash, _) = modulo.finish().map_err(|e| io_error(&node, e))?;
    let store_path = StorePath::from_ca(&ca_hash, &b.name, &new_refs, node.self_reference)?;
    // Pass 3: the final NAR, with the own hash part rewritten too.
    let new_hash = store_path.hash_part().as_bytes().to_vec();
    let packed = cache::pack_nar_with(opts, tmp_dir, |w| {
        let mut nar = cache::unpacked_reader(&node.pass1).map_err(io::Error::other)?;
        let mut rw = Rewriter::new(w, rewrites, Some((b.hash.to_vec(), new_hash)));
        io::copy(&mut nar, &mut rw)?;
        rw.finish().map(|_| ())
    })?;
    let mut references = new_refs;
    if node.self_reference {
        references.push(store_path.clone());
        references.sort();
    }
    Ok(PackedPath {
        store_path,
        was,
        packed,
        ca_hash,
        references,
        self_reference: node.self_reference,
    })
}

fn io_error(node: &Node, e: io::Error) -> ClosureError {
    ClosureError::Io {
        path: node.input.tree.clone(),
        source: e,
    }
}
