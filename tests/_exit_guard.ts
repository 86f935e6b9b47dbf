// Teardown guard for test processes, added to every `deno test` run by scripts/test.ts.
//
// Where WebGPU is wgpu's OpenGL backend (Mesa llvmpipe through EGL and glvnd: CI, which has no Vulkan
// driver), a test-module thread that used GL and is still exiting when the process exits has its glvnd
// thread state freed twice: once by its own thread-specific-data destructor, once by libGLdispatch's
// library destructor, which exit() runs in the main thread. glibc then aborts the process ("double free or
// corruption", "corrupted size vs. prev_size in fastbins"; SIGABRT in __nptl_deallocate_tsd beside
// libGLdispatch) after every test has passed, so the run fails with code 134. Measured here: 6 in 40 runs
// of six two-line WebGPU modules under `deno test --parallel`; 1 in 2 runs of our 11 WebGPU test modules
// together, and 2 of 3 runs of the whole suite. The race is in glvnd/Deno, not in our code, and no
// ordering of modules avoids it (a trailing module that waits did not).
//
// The guard registers libc's `_exit` as an `on_exit` handler. exit(status) calls it, with the same status,
// before the handlers registered at start-up (the library destructors): the process ends at once, with
// the exit code deno test chose, and no library destructor races a thread. With the guard: aborts in 0 of
// 40 runs of the six modules, and 4 of 4 runs of the 11 modules exited 0. Nothing is hidden: a failed
// test still exits 1, and a crash during the tests still crashes.

/** Whether the guard is registered in this process (only on Linux with glibc, where the race is). */
const exitGuardRegistered: boolean = registerExitGuard();

function registerExitGuard(): boolean {
  if (Deno.build.os !== "linux") return false;
  let libc;
  try {
    libc = Deno.dlopen("libc.so.6", {
      on_exit: { parameters: ["pointer", "pointer"], result: "i32" },
      dlsym: { parameters: ["pointer", "buffer"], result: "pointer" },
    });
  } catch {
    return false; // not glibc (e.g. musl): no glvnd destructor race to guard against
  }
  // dlsym(RTLD_DEFAULT = NULL, "_exit"): the address on_exit wants; libc is never unloaded.
  const exitFn = libc.symbols.dlsym(null, new TextEncoder().encode("_exit\0"));
  return exitFn !== null && libc.symbols.on_exit(exitFn, null) === 0;
}

Deno.test({
  name: "test-process exit guard: _exit is registered with on_exit (glibc)",
  ignore: Deno.build.os !== "linux",
  fn() {
    if (!exitGuardRegistered) {
      throw new Error("on_exit(_exit) could not be registered: libc.so.6 without on_exit/dlsym?");
    }
  },
});
