// Kernel launches on the CPU: blocks one after another, the threads of a block
// as fibers on the launching thread (on x86-64 a six-register stack switch,
// elsewhere ucontext, whose signal-mask system calls make it ~50x slower).
//
// A worker fiber runs not-yet-started threads one after another until one of
// them stops at a __syncthreads or a shuffle; that thread keeps the fiber and
// a new worker takes over. So a kernel without synchronisation runs as plain
// calls on a single fiber, and one with it gets a fiber per waiting thread.
// Blocks run in index order, threads in index order (CUDASIM_ORDER=reverse:
// both from the last; a result that changes with it depends on an order CUDA
// does not promise, a race or a floating-point atomic, say).
// Once every thread has started, the scheduler releases a warp whose lanes
// all wait at a shuffle (exchanging their values), or the block once all its
// live threads wait at __syncthreads, and resumes the released threads in
// order. Anything else (a lane that exited or waits elsewhere, mismatched
// masks or widths, a barrier that some threads never reach) is a fault.
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "cudasim/device.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define CUDASIM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CUDASIM_ASAN 1
#endif
#endif
#if CUDASIM_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

namespace cudasim {
namespace {

constexpr int kWarp = 32;
constexpr std::size_t kStackBytes = std::size_t{256} << 10;  // ample for a kernel, also under ASan

enum class State { kNotStarted, kRunning, kReady, kAtShuffle, kAtBarrier, kDone };

#if defined(__x86_64__)
#define CUDASIM_FAST_SWITCH 1
#else
#define CUDASIM_FAST_SWITCH 0
#endif

#if CUDASIM_FAST_SWITCH
// Saves the callee-saved registers, the SSE and x87 control words and the
// stack pointer (into *save_sp), then loads the same from load_sp and returns
// on that stack. The System V ABI leaves every other register to the caller.
extern "C" void cudasim_switch(void** save_sp, void* load_sp);
asm(R"(
  .text
  .globl cudasim_switch
  .type cudasim_switch, @function
cudasim_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size cudasim_switch, .-cudasim_switch
  .section .note.GNU-stack,"",@progbits
  .text
)");
#endif

struct Context {
#if CUDASIM_FAST_SWITCH
  void* sp = nullptr;
#else
  ucontext_t uc{};
#endif
};

void switch_context(Context& save, Context& load) {
#if CUDASIM_FAST_SWITCH
  cudasim_switch(&save.sp, load.sp);
#else
  swapcontext(&save.uc, &load.uc);
#endif
}

struct Fiber {
  Context context;
  void* stack = nullptr;  // mmap'ed, the lowest page a guard
  std::size_t stack_bytes = 0;
  Fiber() = default;
  Fiber(const Fiber&) = delete;
  Fiber& operator=(const Fiber&) = delete;
  ~Fiber() {
    if (stack == nullptr) return;
#if CUDASIM_ASAN
    // A fiber abandoned mid-kernel (a device fault) never unwound its frames,
    // so their redzones are still poisoned, and ASan keeps shadow across
    // munmap: a later stack mapped at these addresses would read as poisoned.
    __asan_unpoison_memory_region(stack, stack_bytes);
#endif
    munmap(stack, stack_bytes);
  }
};

struct SimThread {
  ThreadContext ctx{};
  State state = State::kNotStarted;
  Fiber* fiber = nullptr;
  // The shuffle it waits at.
  unsigned mask = 0;
  int lane_mask = 0;
  int width = 0;
  uint64_t value = 0;
};

// A fault inside a block: the block is abandoned (its fibers are dropped,
// never resumed) and the context gets the sticky error.
struct Scheduler {
  const char* kernel = nullptr;
  const std::function<void()>* body = nullptr;
  std::vector<SimThread> threads;
  std::size_t next_unstarted = 0;  // how many threads have started
  bool reversed = false;           // CUDASIM_ORDER=reverse: blocks and threads last to first
  SimThread* running = nullptr;
  Fiber* running_fiber = nullptr;
  Context main_context;
  std::vector<std::unique_ptr<Fiber>> fibers;  // all fibers, reused from block to block
  std::vector<Fiber*> idle;                    // workers with no thread
  bool failed = false;
  // ASan: the scheduler's stack, and the fake stack of the side switching away.
  const void* main_stack_bottom = nullptr;
  std::size_t main_stack_size = 0;
};

Scheduler* g_sched = nullptr;  // the block being run (launches are serialised by the runtime's queue)

std::string where(const SimThread& t) {
  const ThreadContext& c = t.ctx;
  return "block (" + std::to_string(c.block_idx.x) + "," + std::to_string(c.block_idx.y) + "," +
         std::to_string(c.block_idx.z) + ") thread (" + std::to_string(c.thread_idx.x) + "," +
         std::to_string(c.thread_idx.y) + "," + std::to_string(c.thread_idx.z) + ")";
}

void kernel_fault(const std::string& message) {
  Scheduler& s = *g_sched;
  if (!s.failed) fault(cudaErrorLaunchFailure, std::string(s.kernel) + ": " + message);
  s.failed = true;
}

// ---- context switches (with AddressSanitizer told about each stack) --------

void switch_to_fiber(Fiber* f) {
  Scheduler& s = *g_sched;
  s.running_fiber = f;
#if CUDASIM_ASAN
  void* fake_stack = nullptr;
  __sanitizer_start_switch_fiber(&fake_stack, f->stack, f->stack_bytes);
#endif
  switch_context(s.main_context, f->context);
#if CUDASIM_ASAN
  __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#endif
  s.running_fiber = nullptr;
}

// On a fiber: back to the scheduler, until it resumes this fiber.
void switch_to_main() {
  Scheduler& s = *g_sched;
  Fiber* self = s.running_fiber;
#if CUDASIM_ASAN
  void* fake_stack = nullptr;
  __sanitizer_start_switch_fiber(&fake_stack, s.main_stack_bottom, s.main_stack_size);
#endif
  switch_context(self->context, s.main_context);
#if CUDASIM_ASAN
  __sanitizer_finish_switch_fiber(fake_stack, &g_sched->main_stack_bottom, &g_sched->main_stack_size);
#endif
}

// A worker: runs threads that have not started, one after another, for as
// long as each runs to its end; parks when there are none.
[[noreturn]] void worker_main() {
#if CUDASIM_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &g_sched->main_stack_bottom, &g_sched->main_stack_size);
#endif
  for (;;) {
    Scheduler& s = *g_sched;  // the scheduler may differ from one block to the next
    if (s.next_unstarted < s.threads.size()) {
      const std::size_t k = s.next_unstarted++;
      SimThread& t = s.threads[s.reversed ? s.threads.size() - 1 - k : k];
      t.fiber = s.running_fiber;
      t.state = State::kRunning;
      s.running = &t;
      (*s.body)();
      t.state = State::kDone;
      t.fiber = nullptr;
      s.running = nullptr;
      continue;
    }
    s.idle.push_back(s.running_fiber);
    switch_to_main();
  }
}

Fiber* make_fiber() {
  auto f = std::make_unique<Fiber>();
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  f->stack_bytes = kStackBytes + page;
  void* mem = mmap(nullptr, f->stack_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    std::fprintf(stderr, "cudasim: cannot map a %zu-byte fiber stack\n", f->stack_bytes);
    std::abort();
  }
  f->stack = mem;
  mprotect(mem, page, PROT_NONE);  // overflowing the stack faults instead of corrupting memory
#if CUDASIM_FAST_SWITCH
  // The frame cudasim_switch pops: control words, r15..r12, rbx, rbp, then
  // "returns" into worker_main with the stack as a call would leave it
  // (rsp + 8 16-byte aligned; a null return address above, never used).
  auto top = (reinterpret_cast<uintptr_t>(mem) + f->stack_bytes) & ~uintptr_t{15};
  auto* slot = reinterpret_cast<uint64_t*>(top);
  *--slot = 0;                                              // worker_main's return address
  *--slot = reinterpret_cast<uint64_t>(&worker_main);       // where cudasim_switch returns to
  for (int r = 0; r < 6; ++r) *--slot = 0;                  // rbp, rbx, r12..r15
  uint32_t mxcsr = 0;
  uint16_t fpu_cw = 0;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpu_cw));
  *--slot = static_cast<uint64_t>(mxcsr) | (static_cast<uint64_t>(fpu_cw) << 32);
  f->context.sp = slot;
#else
  getcontext(&f->context.uc);
  f->context.uc.uc_stack.ss_sp = mem;
  f->context.uc.uc_stack.ss_size = f->stack_bytes;
  f->context.uc.uc_link = nullptr;  // workers never return
  makecontext(&f->context.uc, worker_main, 0);
#endif
  Fiber* raw = f.get();
  g_sched->fibers.push_back(std::move(f));
  return raw;
}

// The thread running on this fiber stops until the scheduler resumes it.
void block_running(State why) {
  Scheduler& s = *g_sched;
  SimThread* t = s.running;
  t->state = why;
  s.running = nullptr;
  switch_to_main();
  // Resumed: the scheduler set running and state.
}

// ---- the scheduler's side ---------------------------------------------------

void resume(SimThread& t) {
  Scheduler& s = *g_sched;
  t.state = State::kRunning;
  s.running = &t;
  switch_to_fiber(t.fiber);
}

void start_all() {
  Scheduler& s = *g_sched;
  while (!s.failed && s.next_unstarted < s.threads.size()) {
    Fiber* f = nullptr;
    if (!s.idle.empty()) {
      f = s.idle.back();
      s.idle.pop_back();
    } else {
      f = make_fiber();
    }
    switch_to_fiber(f);
  }
}

bool live(const SimThread& t) { return t.state != State::kDone; }

// Releases every warp whose lanes named by the mask all wait at the shuffle.
// Returns whether any was released; faults on a shuffle that can never
// complete.
bool release_warps() {
  Scheduler& s = *g_sched;
  const int n = static_cast<int>(s.threads.size());
  bool released = false;
  for (int base = 0; base < n && !s.failed; base += kWarp) {
    const int lanes = std::min(kWarp, n - base);
    int first = -1;
    for (int l = 0; l < lanes; ++l)
      if (s.threads[base + l].state == State::kAtShuffle) {
        first = l;
        break;
      }
    if (first < 0) continue;
    const SimThread& lead = s.threads[base + first];
    bool complete = true;
    for (int l = 0; l < kWarp; ++l) {
      if (((lead.mask >> l) & 1u) == 0) continue;
      if (l >= lanes) {
        kernel_fault(where(lead) + ": __shfl_xor_sync mask names lane " + std::to_string(l) +
                     ", which does not exist (block of " + std::to_string(n) + " threads)");
        return false;
      }
      const SimThread& t = s.threads[base + l];
      if (t.state == State::kDone) {
        kernel_fault(where(lead) + ": __shfl_xor_sync with lane " + std::to_string(l) +
                     " in its mask, but that lane has exited");
        return false;
      }
      if (t.state != State::kAtShuffle) {
        complete = false;
        continue;
      }
      if (t.mask != lead.mask || t.width != lead.width) {
        kernel_fault(where(t) + ": __shfl_xor_sync mask/width differ from lane " + std::to_string(first) + "'s");
        return false;
      }
    }
    if (!complete) continue;
    // Every lane in the mask is here: exchange.
    std::vector<uint64_t> out(kWarp, 0);
    for (int l = 0; l < lanes; ++l) {
      const SimThread& t = s.threads[base + l];
      if (t.state != State::kAtShuffle) continue;
      if ((lead.mask >> l & 1u) == 0) {
        kernel_fault(where(t) + ": at a __shfl_xor_sync whose mask leaves it out");
        return false;
      }
      const int width = t.width;
      const int src = l ^ t.lane_mask;
      const int group_end = (l & ~(width - 1)) + width;
      // As CUDA: a source lane in a later group of `width` lanes gives the
      // lane its own value; one outside the mask is undefined (a fault here).
      if (src >= group_end || src >= kWarp) {
        out[l] = t.value;
      } else if (src >= lanes || ((lead.mask >> src) & 1u) == 0) {
        kernel_fault(where(t) + ": __shfl_xor_sync reads lane " + std::to_string(src) + ", outside the mask");
        return false;
      } else {
        out[l] = s.threads[base + src].value;
      }
    }
    for (int l = 0; l < lanes; ++l) {
      SimThread& t = s.threads[base + l];
      if (t.state != State::kAtShuffle) continue;
      t.value = out[l];
      t.state = State::kReady;
    }
    released = true;
  }
  return released;
}

void run_block(const uint3& block_idx, const dim3& grid, const dim3& block) {
  Scheduler& s = *g_sched;
  const std::size_t n = static_cast<std::size_t>(block.x) * block.y * block.z;
  s.threads.assign(n, SimThread{});
  for (std::size_t i = 0; i < n; ++i) {
    ThreadContext& c = s.threads[i].ctx;
    c.thread_idx = uint3{static_cast<unsigned>(i % block.x), static_cast<unsigned>(i / block.x % block.y),
                         static_cast<unsigned>(i / (static_cast<std::size_t>(block.x) * block.y))};
    c.block_idx = block_idx;
    c.block_dim = block;
    c.grid_dim = grid;
  }
  s.next_unstarted = 0;
  start_all();
  while (!s.failed) {
    bool any_live = false, all_at_barrier = true;
    for (const SimThread& t : s.threads) {
      if (!live(t)) continue;
      any_live = true;
      if (t.state != State::kAtBarrier) all_at_barrier = false;
    }
    if (!any_live) return;
    if (!release_warps() && !s.failed) {
      if (!all_at_barrier) {
        for (const SimThread& t : s.threads) {
          if (t.state == State::kAtShuffle) {
            kernel_fault(where(t) + " waits at a __shfl_xor_sync that lanes of its mask never reach "
                                    "(they wait at __syncthreads)");
            break;
          }
        }
        if (!s.failed) kernel_fault("the block cannot make progress");
        return;
      }
      // The guide allows __syncthreads in conditional code only where the
      // condition is the same for the whole block: a thread that has exited
      // without reaching this barrier makes it divergent.
      for (const SimThread& t : s.threads) {
        if (t.state == State::kDone) {
          kernel_fault(where(t) + " exited without reaching the __syncthreads the rest of its block waits at");
          return;
        }
      }
      for (SimThread& t : s.threads)
        if (t.state == State::kAtBarrier) t.state = State::kReady;
    }
    for (std::size_t k = 0; k < s.threads.size() && !s.failed; ++k) {
      SimThread& t = s.threads[s.reversed ? s.threads.size() - 1 - k : k];
      if (t.state == State::kReady) resume(t);
    }
  }
}

Scheduler& scheduler() {
  static Scheduler s;
  return s;
}

// The simulated thread that is running; `what` names the primitive used
// outside a kernel (a programming error in the simulator's caller).
SimThread& running_thread(const char* what) {
  if (g_sched == nullptr || g_sched->running == nullptr) {
    std::fprintf(stderr, "cudasim: %s outside a kernel\n", what);
    std::abort();
  }
  return *g_sched->running;
}

}  // namespace

const ThreadContext& ctx() { return running_thread("threadIdx/blockIdx").ctx; }

void syncthreads() {
  running_thread("__syncthreads");
  block_running(State::kAtBarrier);
}

uint64_t shfl_xor(unsigned mask, uint64_t bits, int lane_mask, int width) {
  SimThread& t = running_thread("__shfl_xor_sync");
  if (width <= 0 || width > kWarp || (width & (width - 1)) != 0) {
    kernel_fault(where(t) + ": __shfl_xor_sync width " + std::to_string(width) + " is not a power of two <= 32");
    width = kWarp;
  }
  t.mask = mask;
  t.lane_mask = lane_mask;
  t.width = width;
  t.value = bits;
  block_running(State::kAtShuffle);
  return t.value;
}

bool valid_launch(const char* kernel, const LaunchConfig& cfg) {
  const dim3 g = cfg.grid, b = cfg.block;
  const unsigned long long threads = static_cast<unsigned long long>(b.x) * b.y * b.z;
  std::string why;
  if (g.x == 0 || g.y == 0 || g.z == 0 || b.x == 0 || b.y == 0 || b.z == 0) why = "a zero grid or block dimension";
  else if (g.x > 2147483647u || g.y > 65535u || g.z > 65535u) why = "a grid beyond (2^31-1, 65535, 65535)";
  else if (b.x > 1024u || b.y > 1024u || b.z > 64u || threads > 1024u) why = "a block of more than 1024 threads";
  else if (cfg.shared_bytes > 48u * 1024u) why = "more than 48 KiB of dynamic shared memory";
  if (why.empty()) return true;
  api_error(cudaErrorInvalidConfiguration,
            std::string(kernel) + " launched with " + why + ": grid (" + std::to_string(g.x) + "," +
                std::to_string(g.y) + "," + std::to_string(g.z) + "), block (" + std::to_string(b.x) + "," +
                std::to_string(b.y) + "," + std::to_string(b.z) + ")");
  return false;
}

bool check_pointer_argument(const char* kernel, int index, const void* p) {
  if (p == nullptr || is_device_pointer(p)) return true;
  fault(cudaErrorIllegalAddress, std::string(kernel) + ": argument " + std::to_string(index) +
                                     " is a pointer outside device memory (a host pointer, or freed)");
  return false;
}

void run_grid(const char* kernel, const LaunchConfig& cfg, const std::function<void()>& body) {
  Scheduler& s = scheduler();
  Scheduler* outer = g_sched;
  if (outer != nullptr) {
    std::fprintf(stderr, "cudasim: %s launched from inside a kernel\n", kernel);
    std::abort();
  }
  g_sched = &s;
  s.kernel = kernel;
  s.body = &body;
  s.failed = false;
  const char* order = std::getenv("CUDASIM_ORDER");
  s.reversed = order != nullptr && std::string(order) == "reverse";
  const dim3 g = cfg.grid;
  const uint64_t n_blocks = static_cast<uint64_t>(g.x) * g.y * g.z;
  for (uint64_t k = 0; k < n_blocks && !s.failed; ++k) {
    const uint64_t b = s.reversed ? n_blocks - 1 - k : k;
    run_block(uint3{static_cast<unsigned>(b % g.x), static_cast<unsigned>(b / g.x % g.y),
                    static_cast<unsigned>(b / (static_cast<uint64_t>(g.x) * g.y))},
              g, cfg.block);
  }
  if (s.failed) {
    // Threads of the abandoned block still hold fibers mid-kernel: drop them all.
    s.idle.clear();
    s.fibers.clear();
  }
  s.threads.clear();
  s.running = nullptr;
  g_sched = nullptr;
}

}  // namespace cudasim
