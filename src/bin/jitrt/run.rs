//! `jitrt run`: link the inputs into this process and call their `main`.

use crate::explain;
use crate::inputs::{self, Item, TempDir};
use crate::{Fail, Options};
use jitrt::link::host::HostSymbolGenerator;
use jitrt::link::{program, scan_object, Archive, MemberId, ObjectFormat, ObjectLinkingLayer};
use jitrt::orc::{
    DefinitionGenerator, ErrorCode, JITDylib, ResourceTracker, Session, SessionOptions,
    SymbolFlags, SymbolLookupFlags, SymbolName, SymbolState,
};
use std::ffi::{c_int, CString};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The tracker of the program running now, for [`program_exit`].
static RUNNING: Mutex<Option<ResourceTracker>> = Mutex::new(None);

/// The program's `exit`: the C library's `exit` would run the handlers the
/// program registered with `atexit`/`__cxa_atexit` only when its tracker
/// is removed, which `jitrt` never gets to do after `exit`. So remove the
/// program first (its destructors and handlers run, as with a native
/// program's `exit`), then exit. Never returns into the removed code.
extern "C" fn program_exit(status: c_int) -> ! {
    program::flush_c_streams();
    let tracker = RUNNING.lock().ok().and_then(|mut t| t.take());
    if let Some(t) = tracker {
        let _ = t.remove();
    }
    // The C library's `exit` (handlers the host registered, streams).
    std::process::exit(status)
}

/// What one link of the inputs gives.
struct Linked {
    tracker: ResourceTracker,
    entry: u64,
    parse: Duration,
    link: Duration,
    /// Generators added for this link (removed after it).
    generators: Vec<Arc<dyn DefinitionGenerator>>,
}

/// The resident set size of this process in KiB, from /proc.
pub fn rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Prints one progress line on stderr if it is not dropped within the delay
/// (`JITRT_PROGRESS_DELAY_MS`, default 1000 ms).
pub struct Progress {
    done: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    pub fn start(what: String) -> Progress {
        let delay = std::env::var("JITRT_PROGRESS_DELAY_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(1000);
        if delay == 0 {
            eprintln!("jitrt: {what}...");
            return Progress {
                done: None,
                thread: None,
            };
        }
        let (tx, rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("jitrt-progress".into())
            .spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) =
                    rx.recv_timeout(Duration::from_millis(delay))
                {
                    eprintln!("jitrt: {what}...");
                }
            })
            .ok();
        Progress {
            done: Some(tx),
            thread,
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        drop(self.done.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// The object format of the inputs: the first object's (or first archive
/// member's). Mach-O objects name C `main` `_main`; one dylib never mixes
/// formats (the layer refuses it, naming both objects).
fn inputs_format(items: &[Item]) -> ObjectFormat {
    for it in items {
        match it {
            Item::Object { name, bytes } => {
                if let Ok(info) = scan_object(name, bytes) {
                    return info.format;
                }
            }
            Item::Archive { path } => {
                let Ok(a) = Archive::open(path) else { continue };
                for m in 0..a.member_count() {
                    let id = MemberId(m as u32);
                    let (Some(bytes), Some(name)) = (a.member_bytes(id), a.member_name(id)) else {
                        continue;
                    };
                    if let Ok(info) = scan_object(name, &bytes) {
                        return info.format;
                    }
                }
            }
            Item::Library { .. } => {}
        }
    }
    ObjectFormat::Elf
}

/// Opens the shared libraries once (they stay loaded for the session),
/// serving objects of `format` (Mach-O `_sin` is the library's `sin`).
fn open_libraries(
    items: &[Item],
    format: ObjectFormat,
) -> Result<Vec<Option<Arc<HostSymbolGenerator>>>, Fail> {
    items
        .iter()
        .map(|it| match it {
            Item::Library { name, path } => HostSymbolGenerator::open(path)
                .map(|g| Some(Arc::new(g.for_format(format))))
                .map_err(|e| Fail::new(format!("{name}: {}", e.message()))),
            _ => Ok(None),
        })
        .collect()
}

/// Adds every input under a new tracker and links: every symbol of every
/// object given is looked up (so each is linked, as a static linker
/// includes every object), then the entry point.
#[allow(clippy::too_many_arguments)]
fn link_once(
    session: &Session,
    layer: &Arc<ObjectLinkingLayer>,
    dylib: &Arc<JITDylib>,
    items: &[Item],
    libs: &[Option<Arc<HostSymbolGenerator>>],
    entry: &str,
    lib_dirs: &[String],
    format: ObjectFormat,
) -> Result<Linked, Fail> {
    let t = Instant::now();
    let tracker = dylib.create_tracker()?;
    let mut generators: Vec<Arc<dyn DefinitionGenerator>> = Vec::new();
    let mut names: Vec<(SymbolName, SymbolLookupFlags)> = Vec::new();
    let mut objects = 0usize;
    let result = (|| -> Result<(), Fail> {
        // Weak: a program that defines its own `exit` keeps it.
        tracker.define_absolute(&[(
            SymbolName::intern(&format!("{}exit", format.symbol_prefix())),
            program_exit as *const () as usize as u64,
            SymbolFlags::EXPORTED | SymbolFlags::CALLABLE | SymbolFlags::WEAK,
        )])?;
        for (it, lib) in items.iter().zip(libs) {
            match it {
                Item::Object { name, bytes } => {
                    let info = scan_object(name, bytes)?;
                    layer.add(&tracker, name, bytes.clone())?;
                    objects += 1;
                    names.extend(info.symbols.iter().map(|s| {
                        (
                            SymbolName::intern(&s.name),
                            SymbolLookupFlags::WeaklyReferenced,
                        )
                    }));
                }
                Item::Archive { path } => layer.add_archive(&tracker, path)?,
                Item::Library { .. } => {
                    if let Some(g) = lib {
                        let g: Arc<dyn DefinitionGenerator> = g.clone();
                        dylib.add_generator(g.clone())?;
                        generators.push(g);
                    }
                }
            }
        }
        Ok(())
    })();
    let fail_cleanup = |generators: &[Arc<dyn DefinitionGenerator>]| {
        let _ = tracker.remove();
        for g in generators {
            dylib.remove_generator(g);
        }
    };
    if let Err(e) = result {
        fail_cleanup(&generators);
        return Err(e);
    }
    let parse = t.elapsed();

    let t = Instant::now();
    let progress = Progress::start(format!(
        "linking {objects} object{} (taking more than a second)",
        if objects == 1 { "" } else { "s" }
    ));
    let linked = (|| -> Result<u64, Fail> {
        names.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        names.dedup_by(|a, b| a.0 == b.0);
        session
            .lookup(dylib.search_order()?, names, SymbolState::Ready)
            .map_err(|e| link_failure(&e, lib_dirs))?;
        dylib.lookup(entry).map_err(|e| {
            if e.code() == ErrorCode::SymbolNotFound {
                Fail::new(format!(
                    "entry point `{entry}` is not defined by the inputs{}",
                    if entry == format!("{}main", format.symbol_prefix()) {
                        " (use --entry to call another function)"
                    } else {
                        ""
                    }
                ))
            } else {
                link_failure(&e, lib_dirs)
            }
        })
    })();
    drop(progress);
    match linked {
        Ok(entry) => Ok(Linked {
            tracker,
            entry,
            parse,
            link: t.elapsed(),
            generators,
        }),
        Err(e) => {
            fail_cleanup(&generators);
            Err(e)
        }
    }
}

/// A failed link as the user reads it: the root cause first, long lists of
/// names capped, the library that defines missing symbols named.
fn link_failure(e: &jitrt::orc::Error, lib_dirs: &[String]) -> Fail {
    let mut f = Fail::new(explain::link_failure(e.message(), lib_dirs));
    if f.message.contains("undefined symbol") {
        f.message += " (`jitrt check` lists every problem at once)";
    }
    f
}

/// Calls the program's entry point as `main(argc, argv, envp)`.
fn call_main(addr: u64, argv: &[CString]) -> i32 {
    // SAFETY: `addr` is the address of a linked, ready function that the
    // user names as the program's C `main` (`--entry`): the contract of
    // `jitrt run`. Its tracker lives until after the call.
    unsafe { program::call_main(addr, argv) }
}

pub fn run(o: &Options) -> Result<u8, Fail> {
    let mut tmp = TempDir::new();
    let loaded = inputs::load(o, &mut tmp, &mut |f| Err(f))?;
    // Objects are in memory now; nothing is left behind if main exits.
    drop(tmp);
    let items = loaded.items;
    // Mach-O inputs name C functions with a leading underscore: `main`
    // (and `--entry go`) is `_main` (`_go`) there.
    let format = inputs_format(&items);
    let entry = format!(
        "{}{}",
        format.symbol_prefix(),
        o.entry.as_deref().unwrap_or("main")
    );
    let entry = entry.as_str();
    let argv0 = o.inputs().next().unwrap_or("jitrt").to_string();
    let argv: Vec<CString> = std::iter::once(argv0.as_str())
        .chain(o.program_args.iter().map(String::as_str))
        .map(|a| {
            CString::new(a)
                .map_err(|_| Fail::new(format!("program argument {a:?} contains a NUL byte")))
        })
        .collect::<Result<_, _>>()?;
    // The program's initializers see its own arguments, as its main does.
    jitrt::link::set_program_args(&argv);

    let session = Session::new(SessionOptions {
        flags: if o.debug {
            jitrt::link::debug::DebugSupport::debugger().flags()
        } else {
            0
        },
        ..Default::default()
    });
    let layer = ObjectLinkingLayer::of(&session)?;
    let dylib = session.create_dylib("main")?;
    let libs = open_libraries(&items, format)?;
    let repeat = o.repeat.unwrap_or(1);
    let rss_before = rss_kib();
    let mut rss_first = None;
    let mut status = 0;
    for i in 0..repeat {
        let linked = link_once(
            &session,
            &layer,
            &dylib,
            &items,
            &libs,
            entry,
            &o.lib_dirs,
            format,
        )?;
        if o.stats && i == 0 {
            let s = session.stats();
            eprintln!(
                "jitrt: stats: {} bytes mapped ({} code, {} data), {} object{} linked, {} symbols defined",
                s.code_bytes + s.data_bytes,
                s.code_bytes,
                s.data_bytes,
                s.objects_linked,
                if s.objects_linked == 1 { "" } else { "s" },
                s.symbols
            );
        }
        let t = Instant::now();
        if let Ok(mut r) = RUNNING.lock() {
            *r = Some(linked.tracker.clone());
        }
        status = call_main(linked.entry, &argv);
        if let Ok(mut r) = RUNNING.lock() {
            *r = None;
        }
        let run_time = t.elapsed();
        let t = Instant::now();
        let removed = linked.tracker.remove();
        for g in &linked.generators {
            dylib.remove_generator(g);
        }
        removed?;
        let remove_time = t.elapsed();
        if o.times {
            let compile = if i == 0 && !loaded.compile_time.is_zero() {
                format!("compile {}, ", ms(loaded.compile_time))
            } else {
                String::new()
            };
            let parse = if i == 0 {
                linked.parse + loaded.read_time
            } else {
                linked.parse
            };
            eprintln!(
                "jitrt: times{}: {compile}parse {}, link {}, run {}, remove {}",
                if repeat > 1 {
                    format!(" (run {})", i + 1)
                } else {
                    String::new()
                },
                ms(parse),
                ms(linked.link),
                ms(run_time),
                ms(remove_time)
            );
        }
        if i == 0 {
            rss_first = rss_kib();
        }
    }
    if o.repeat.is_some() {
        let kib = |v: Option<u64>| v.map_or("?".to_string(), |k| format!("{k} KiB"));
        eprintln!(
            "jitrt: rss: before {}, after run 1 {}, after run {repeat} {}",
            kib(rss_before),
            kib(rss_first),
            kib(rss_kib())
        );
    }
    drop(session);
    Ok((status & 0xff) as u8)
}
