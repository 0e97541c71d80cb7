// Host shim: compiles a tessera-gpu kernel source (kernels/*.cu) as ordinary C++ so that the
// tests can run its index arithmetic on the CPU, thread by thread, against the CPU crates.
//
// Every tessera kernel is a grid-stride loop with no cross-thread dependency (no shared memory,
// no __syncthreads, no atomics), so running the threads one after another gives exactly the
// result of any interleaving on a device. What the shim cannot check: races, and device-only
// behaviour such as fused multiply-add contraction (the device parity tests cover those).
#pragma once

#include <math.h>
#include <stdint.h>

struct shim_dim3 {
    unsigned int x, y, z;
};

static shim_dim3 threadIdx, blockIdx, blockDim, gridDim;

struct float2 {
    float x, y;
};

#define __global__
#define __device__
#define __forceinline__ inline

// Runs `kernel(args...)` once for every (block, thread) of a one-dimensional launch, as the
// device would, and leaves the grid variables as a device launch sees them.
template <typename... Params, typename... Args>
static void shim_launch(void (*kernel)(Params...), unsigned int grid, unsigned int block,
                        Args... args) {
    gridDim = shim_dim3{grid, 1, 1};
    blockDim = shim_dim3{block, 1, 1};
    for (unsigned int b = 0; b < grid; ++b) {
        for (unsigned int t = 0; t < block; ++t) {
            blockIdx = shim_dim3{b, 0, 0};
            threadIdx = shim_dim3{t, 0, 0};
            kernel(args...);
        }
    }
}
