//! `jitrt`: link C and C++ objects, archives and sources into this process
//! with libjitrt and run them, or check that they would link.
//!
//! - `main.rs`: command-line parsing, the error type, exit codes.
//! - `inputs.rs`: classifying inputs, compiling sources, finding `-l`
//!   libraries.
//! - `run.rs`: `jitrt run`.
//! - `check.rs`: `jitrt check`.
//! - `explain.rs`: failures as the user reads them (root cause first,
//!   capped lists, the system library that defines a missing symbol).
//!
//! It uses the crate's Rust API (`jitrt::orc`, `jitrt::link`), not the C
//! API. Every error is one line `jitrt: error: ...` on stderr; a panic is
//! one line `jitrt: internal error: ...`.

mod check;
mod explain;
mod inputs;
mod run;

use std::fmt;
use std::process::ExitCode;

/// `run`: the inputs could not be compiled, loaded or linked, or jitrt
/// failed internally; nothing ran.
pub const EXIT_FAILED: u8 = 125;
/// Bad command line.
pub const EXIT_USAGE: u8 = 2;
/// `check`: something would fail.
pub const EXIT_PROBLEMS: u8 = 1;

const HELP: &str = "\
jitrt: link relocatable objects into this process with libjitrt and run them

USAGE:
    jitrt run [OPTIONS] INPUT... [-- ARGS...]
    jitrt check [OPTIONS] INPUT...
    jitrt --help | --version

jitrt run
    Links the inputs in memory and calls their main(argc, argv, envp) as a
    program; argv[0] is the first input's name and ARGS follow it. The exit
    status is main's. Every object given is linked (as a static linker
    would); archive members are linked when a symbol they define is needed.
    Afterwards everything is removed again (destructors run, memory
    returned).

jitrt check
    Links without running and reports every undefined symbol and every
    unsupported construct of every input at once, naming the object and the
    section, then prints a summary line on stdout.

INPUTS
    FILE.o             a relocatable ELF x86-64 object
    FILE.a             a static library; members are pulled when needed
    FILE.so[.N]        a shared library to resolve against (like -l)
    FILE.c             C, compiled first with $CC (default cc), -fPIC and
                       $CFLAGS
    FILE.cc .cpp .cxx .C
                       C++, compiled with $CXX (default c++), -fPIC and
                       $CXXFLAGS
    Symbols no input defines resolve from the shared libraries given, in
    command-line order, then from the jitrt process itself (libc). When an
    input is C++ (a source, or an object using the C++ runtime), libstdc++,
    libm and libgcc_s are added after them, as c++ does. LTO objects
    (-flto) hold no machine code: compile without -flto (or with
    -ffat-lto-objects).

OPTIONS
    --entry SYMBOL     the function to call instead of main (run); with
                       check, report an error if SYMBOL is not defined
    -l NAME, -lNAME    resolve against shared library libNAME.so (searched in
                       the -L directories, then the system's; libNAME.so.N
                       when there is no development symlink); -l:FILE names
                       the file exactly
    -L DIR, -LDIR      add DIR to the library search path
    --times            (run) print compile, parse, link, run and remove times
    --stats            (run) print bytes mapped, objects linked and symbols
    --repeat N         (run) link, run and remove N times; print the
                       resident set size before and after
    -g                 (run) make the linked code visible to gdb and lldb
                       (GDB JIT interface: break on JIT functions by name,
                       source lines, locals, backtraces) and compile source
                       inputs with -g; e.g. gdb --args jitrt run -g prog.c
    -h, --help         this text
    -V, --version      the version

ENVIRONMENT
    CC, CXX, CFLAGS, CXXFLAGS   compilers and flags for source inputs
    JITRT_PROGRESS_DELAY_MS     when a progress line is printed for a slow
                                link (default 1000)
    JITRT_DEBUGGER=1            as -g for the linked code (not the compile)
    JITRT_PERF=map|jitdump      name JIT code for perf: /tmp/perf-PID.map,
                                or jit-PID.dump in $JITDUMPDIR (default
                                ~/.debug/jit) for perf record -k 1 and
                                perf inject --jit; map,jitdump for both

EXIT STATUS
    run:    the exit status of main (of the last run with --repeat);
            125 if the inputs could not be compiled, loaded or linked, or
            jitrt failed: nothing ran (or not all --repeat runs did)
    check:  0 if everything would link, 1 if anything would fail
    both:   2 for a usage error (bad option, no inputs)

Every error is one line `jitrt: error: ...` on stderr.
";

/// A failure: one message line and the exit status it gives.
#[derive(Debug)]
pub struct Fail {
    pub message: String,
    pub status: u8,
}

impl Fail {
    pub fn new(message: impl Into<String>) -> Fail {
        Fail {
            message: message.into(),
            status: EXIT_FAILED,
        }
    }

    fn usage(message: impl Into<String>) -> Fail {
        Fail {
            message: message.into(),
            status: EXIT_USAGE,
        }
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<jitrt::orc::Error> for Fail {
    fn from(e: jitrt::orc::Error) -> Fail {
        Fail::new(e.message())
    }
}

impl From<jitrt::link::LinkError> for Fail {
    fn from(e: jitrt::link::LinkError) -> Fail {
        Fail::new(e.message)
    }
}

/// Prints `jitrt: error: MESSAGE` on one line.
pub fn error_line(message: &str) {
    eprintln!("jitrt: error: {}", one_line(message));
}

/// `s` with line breaks folded, so every report is one line.
pub fn one_line(s: &str) -> String {
    let s = s.trim_end();
    if s.contains('\n') {
        s.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ")
    } else {
        s.to_string()
    }
}

/// An input or library option, in command-line order (the order symbols
/// are searched in).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arg {
    Input(String),
    Lib(String),
}

/// The parsed options of `run` and `check`.
#[derive(Debug, Default)]
pub struct Options {
    pub args: Vec<Arg>,
    pub lib_dirs: Vec<String>,
    pub entry: Option<String>,
    pub times: bool,
    pub stats: bool,
    pub repeat: Option<u64>,
    /// `-g`: register the linked code with debuggers, compile sources
    /// with `-g`.
    pub debug: bool,
    pub program_args: Vec<String>,
}

impl Options {
    /// The inputs (not the libraries).
    pub fn inputs(&self) -> impl Iterator<Item = &str> {
        self.args.iter().filter_map(|a| match a {
            Arg::Input(s) => Some(s.as_str()),
            Arg::Lib(_) => None,
        })
    }
}

fn parse(cmd: &str, argv: &[String]) -> Result<Options, Fail> {
    let mut o = Options::default();
    let mut i = 0;
    let run = cmd == "run";
    let value = |i: &mut usize, name: &str| -> Result<String, Fail> {
        *i += 1;
        argv.get(*i)
            .cloned()
            .ok_or_else(|| Fail::usage(format!("option {name} needs a value")))
    };
    while i < argv.len() {
        let a = argv[i].as_str();
        match a {
            "--" => {
                if !run {
                    return Err(Fail::usage(
                        "`jitrt check` takes no program arguments (`--`)",
                    ));
                }
                o.program_args = argv[i + 1..].to_vec();
                break;
            }
            "--entry" => o.entry = Some(value(&mut i, a)?),
            "-l" => o.args.push(Arg::Lib(value(&mut i, a)?)),
            "-L" => o.lib_dirs.push(value(&mut i, a)?),
            "--times" if run => o.times = true,
            "--stats" if run => o.stats = true,
            "-g" if run => o.debug = true,
            "--repeat" if run => {
                let v = value(&mut i, a)?;
                match v.parse::<u64>() {
                    Ok(n) if n > 0 => o.repeat = Some(n),
                    _ => {
                        return Err(Fail::usage(format!(
                            "--repeat needs a positive number, not `{v}`"
                        )))
                    }
                }
            }
            _ if a.starts_with("--entry=") => o.entry = Some(a["--entry=".len()..].to_string()),
            _ if a.starts_with("--repeat=") && run => {
                let v = &a["--repeat=".len()..];
                match v.parse::<u64>() {
                    Ok(n) if n > 0 => o.repeat = Some(n),
                    _ => {
                        return Err(Fail::usage(format!(
                            "--repeat needs a positive number, not `{v}`"
                        )))
                    }
                }
            }
            _ if a.starts_with("-l") => o.args.push(Arg::Lib(a[2..].to_string())),
            _ if a.starts_with("-L") => o.lib_dirs.push(a[2..].to_string()),
            _ if a.starts_with('-') && a.len() > 1 => {
                let hint = if run {
                    " (program arguments go after `--`)"
                } else {
                    ""
                };
                return Err(Fail::usage(format!(
                    "unknown option `{a}` for `jitrt {cmd}`{hint}; see `jitrt --help`"
                )));
            }
            _ => o.args.push(Arg::Input(a.to_string())),
        }
        i += 1;
    }
    if o.inputs().next().is_none() {
        return Err(Fail::usage(format!(
            "no inputs: `jitrt {cmd} FILE...`; see `jitrt --help`"
        )));
    }
    if let Some(e) = &o.entry {
        if e.is_empty() {
            return Err(Fail::usage("--entry needs a symbol name"));
        }
    }
    Ok(o)
}

fn real_main() -> Result<u8, Fail> {
    let argv: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| {
            a.into_string()
                .map_err(|a| Fail::usage(format!("argument {a:?} is not valid UTF-8")))
        })
        .collect::<Result<_, _>>()?;
    let Some(cmd) = argv.first() else {
        print!("{HELP}");
        return Ok(EXIT_USAGE);
    };
    match cmd.as_str() {
        "-h" | "--help" | "help" => {
            print!("{HELP}");
            Ok(0)
        }
        "-V" | "--version" => {
            println!("jitrt {}", env!("CARGO_PKG_VERSION"));
            Ok(0)
        }
        "run" | "check" => {
            let rest = &argv[1..];
            if rest
                .iter()
                .take_while(|a| *a != "--")
                .any(|a| a == "-h" || a == "--help")
            {
                print!("{HELP}");
                return Ok(0);
            }
            let o = parse(cmd, rest)?;
            if cmd == "run" {
                run::run(&o)
            } else {
                check::check(&o)
            }
        }
        other => Err(Fail::usage(format!(
            "unknown command `{other}`: use `jitrt run` or `jitrt check`; see `jitrt --help`"
        ))),
    }
}

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_string());
        let at = info
            .location()
            .map(|l| format!(" (at {}:{})", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "jitrt: internal error: {}{at}; please report it",
            one_line(&msg)
        );
    }));
    match std::panic::catch_unwind(real_main) {
        Ok(Ok(status)) => ExitCode::from(status),
        Ok(Err(f)) => {
            error_line(&f.message);
            ExitCode::from(f.status)
        }
        Err(_) => ExitCode::from(EXIT_FAILED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_run_options() {
        let o = parse(
            "run",
            &args(&[
                "a.c",
                "-lm",
                "-L",
                "/x",
                "-l",
                "z",
                "--entry",
                "go",
                "--times",
                "--repeat=3",
                "b.o",
                "--",
                "-x",
                "y",
            ]),
        )
        .unwrap();
        assert_eq!(
            o.args,
            vec![
                Arg::Input("a.c".into()),
                Arg::Lib("m".into()),
                Arg::Lib("z".into()),
                Arg::Input("b.o".into())
            ]
        );
        assert_eq!(o.lib_dirs, vec!["/x".to_string()]);
        assert_eq!(o.entry.as_deref(), Some("go"));
        assert!(o.times && !o.stats);
        assert_eq!(o.repeat, Some(3));
        assert_eq!(o.program_args, args(&["-x", "y"]));
    }

    #[test]
    fn rejects_bad_usage() {
        assert_eq!(parse("run", &args(&[])).unwrap_err().status, EXIT_USAGE);
        assert_eq!(
            parse("run", &args(&["a.o", "--bogus"])).unwrap_err().status,
            EXIT_USAGE
        );
        assert_eq!(
            parse("run", &args(&["a.o", "--repeat", "0"]))
                .unwrap_err()
                .status,
            EXIT_USAGE
        );
        assert!(parse("check", &args(&["a.o", "--times"])).is_err());
        assert!(parse("run", &args(&["a.o", "-l"])).is_err());
    }

    #[test]
    fn folds_lines() {
        assert_eq!(one_line("a\n b\n\n"), "a; b");
    }
}
