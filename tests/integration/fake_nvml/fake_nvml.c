/* A tiny stand-in for libnvidia-ml.so.1 with the ABI pynvml calls, for testing the real binding.
 *
 * GPU 0: a full GPU (duty cycle 42 %, one process). GPU 1: MIG enabled, MIG devices in slots 0
 * and 2 (slot 1 empty), a process on slot 0. GPU 2: lost (everything but UUID/name fails with
 * NVML_ERROR_GPU_IS_LOST). FAKE_NVML_INIT_ERROR=<code> makes initialisation fail with that code.
 *
 * GPM, as on Hopper: GPU 0 (an H100) has it, with SM activity 37.5 % between any two samples;
 * the A100 does not (NOT_SUPPORTED). FAKE_NVML_H100_MIG=1 makes GPU 1 an H100 with MIG, whose
 * instances (GPU instance ids 1 and 2) have GPM: 60 % on slot 0, 0 % on slot 2.
 * fake_gpm_live() counts samples allocated and not yet freed.
 */
#include <stdlib.h>
#include <string.h>

#define OK 0
#define NOT_SUPPORTED 3
#define NOT_FOUND 6
#define INVALID_ARGUMENT 2
#define INSUFFICIENT_SIZE 7
#define GPU_IS_LOST 15
#define GiB (1024ULL * 1024ULL * 1024ULL)

typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct { unsigned int gpu, memory; } nvmlUtilization_t;
typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_t;

typedef struct device {
    const char *uuid, *name;
    double sm_util;      /* GPM SM activity; < 0: no GPM */
    unsigned int gi;     /* GPU instance id of a MIG device */
    unsigned long long mem_total, mem_used;
    int util;            /* -1: not supported */
    int mig;             /* MIG mode enabled */
    int lost;
    unsigned int nprocs, pid;
    unsigned long long proc_mem;
    struct device *migs[3];
} device;

static device mig0 = {"MIG-11111111-1111-1111-1111-111111111111", "NVIDIA A100-SXM4-40GB MIG 1g.5gb",
                      -1, 1, 5 * GiB, 1 * GiB, -1, 0, 0, 1, 77, 1 * GiB, {0}};
static device mig2 = {"MIG-22222222-2222-2222-2222-222222222222", "NVIDIA A100-SXM4-40GB MIG 1g.5gb",
                      -1, 2, 5 * GiB, 0, -1, 0, 0, 0, 0, 0, {0}};
static device gpus[3] = {
    {"GPU-00000000-0000-0000-0000-000000000000", "NVIDIA H100 80GB HBM3", 37.5, 0, 80 * GiB,
     4 * GiB, 42, 0, 0, 1, 4242, 3 * GiB, {0}},
    {"GPU-11111111-0000-0000-0000-000000000000", "NVIDIA A100-SXM4-40GB", -1, 0, 40 * GiB, 1 * GiB,
     -1, 1, 0, 0, 0, 0, {&mig0, 0, &mig2}},
    {"GPU-22222222-0000-0000-0000-000000000000", "NVIDIA H100 80GB HBM3", 0, 0, 80 * GiB, 0, 0, 0,
     1, 0, 0, 0, {0}},
};

static int copy(const char *s, char *out, unsigned int len) {
    if (strlen(s) + 1 > len) return INSUFFICIENT_SIZE;
    strcpy(out, s);
    return OK;
}

int nvmlInitWithFlags(unsigned int flags) {
    const char *e = getenv("FAKE_NVML_INIT_ERROR");
    (void)flags;
    if (getenv("FAKE_NVML_H100_MIG")) {
        gpus[1].name = "NVIDIA H100 80GB HBM3";
        gpus[1].sm_util = 0;  /* the parent has GPM; with MIG on, only its instances are read */
        mig0.name = mig2.name = "NVIDIA H100 80GB HBM3 MIG 1g.10gb";
        mig0.sm_util = 60.0;
        mig2.sm_util = 0.0;
    }
    return e ? atoi(e) : OK;
}
int nvmlInit_v2(void) { return nvmlInitWithFlags(0); }
int nvmlShutdown(void) { return OK; }
const char *nvmlErrorString(int code) { return code == GPU_IS_LOST ? "GPU is lost" : "fake error"; }

int nvmlDeviceGetCount_v2(unsigned int *count) { *count = 3; return OK; }
int nvmlDeviceGetHandleByIndex_v2(unsigned int i, device **out) {
    if (i >= 3) return INVALID_ARGUMENT;
    *out = &gpus[i];
    return OK;
}
int nvmlDeviceGetUUID(device *d, char *out, unsigned int len) { return copy(d->uuid, out, len); }
int nvmlDeviceGetName(device *d, char *out, unsigned int len) { return copy(d->name, out, len); }
int nvmlDeviceGetMemoryInfo(device *d, nvmlMemory_t *m) {
    if (d->lost) return GPU_IS_LOST;
    m->total = d->mem_total; m->used = d->mem_used; m->free = d->mem_total - d->mem_used;
    return OK;
}
int nvmlDeviceGetMigMode(device *d, unsigned int *current, unsigned int *pending) {
    if (d->lost) return GPU_IS_LOST;
    *current = *pending = (unsigned int)d->mig;
    return OK;
}
int nvmlDeviceGetUtilizationRates(device *d, nvmlUtilization_t *u) {
    if (d->lost) return GPU_IS_LOST;
    if (d->util < 0) return NOT_SUPPORTED;
    u->gpu = (unsigned int)d->util; u->memory = 7;
    return OK;
}
int nvmlDeviceGetComputeRunningProcesses_v3(device *d, unsigned int *count, nvmlProcessInfo_t *p) {
    if (d->lost) return GPU_IS_LOST;
    if (*count < d->nprocs) { *count = d->nprocs; return INSUFFICIENT_SIZE; }
    *count = d->nprocs;
    if (d->nprocs) {
        p[0].pid = d->pid; p[0].usedGpuMemory = d->proc_mem;
        p[0].gpuInstanceId = p[0].computeInstanceId = 0;
    }
    return OK;
}
int nvmlDeviceGetTotalEnergyConsumption(device *d, unsigned long long *mj) {
    if (d->lost) return GPU_IS_LOST;
    *mj = 123456789ULL;
    return OK;
}
int nvmlDeviceGetPowerUsage(device *d, unsigned int *mw) {
    if (d->lost) return GPU_IS_LOST;
    *mw = 250500;
    return OK;
}
int nvmlDeviceGetMaxMigDeviceCount(device *d, unsigned int *count) {
    *count = d->mig ? 3 : 0;
    return d->mig ? OK : NOT_SUPPORTED;
}
int nvmlDeviceGetMigDeviceHandleByIndex(device *d, unsigned int i, device **out) {
    if (i >= 3 || !d->migs[i]) return NOT_FOUND;
    *out = d->migs[i];
    return OK;
}

/* GPM: samples are opaque to the caller; metrics compare two of the same device. */
typedef struct { device *d; } gpm_sample;
typedef struct { const char *shortName, *longName, *unit; } metric_info;
typedef struct { unsigned int metricId; int nvmlReturn; double value; metric_info info; } gpm_metric;
typedef struct {
    unsigned int version, numMetrics;
    gpm_sample *sample1, *sample2;
    gpm_metric metrics[477];
} gpm_metrics_get;
typedef struct { unsigned int version, isSupportedDevice; } gpm_support;
static int live_samples;

int fake_gpm_live(void) { return live_samples; }
int nvmlGpmQueryDeviceSupport(device *d, gpm_support *out) {
    if (d->lost) return GPU_IS_LOST;
    out->isSupportedDevice = d->sm_util >= 0;
    return OK;
}
int nvmlGpmSampleAlloc(gpm_sample **out) {
    *out = calloc(1, sizeof(gpm_sample));
    live_samples++;
    return OK;
}
int nvmlGpmSampleFree(gpm_sample *s) {
    free(s);
    live_samples--;
    return OK;
}
int nvmlGpmSampleGet(device *d, gpm_sample *s) {
    if (d->sm_util < 0 || d->mig) return NOT_SUPPORTED;
    s->d = d;
    return OK;
}
int nvmlDeviceGetGpuInstanceId(device *d, unsigned int *id) {
    if (!d->gi) return INVALID_ARGUMENT;  /* not a MIG device */
    *id = d->gi;
    return OK;
}
int nvmlGpmMigSampleGet(device *parent, unsigned int gi, gpm_sample *s) {
    if (parent->sm_util < 0) return NOT_SUPPORTED;
    for (int i = 0; i < 3; i++) {
        if (parent->migs[i] && parent->migs[i]->gi == gi) { s->d = parent->migs[i]; return OK; }
    }
    return NOT_FOUND;
}
int nvmlGpmMetricsGet(gpm_metrics_get *q) {
    if (!q->sample1 || !q->sample2 || q->sample1->d != q->sample2->d) return INVALID_ARGUMENT;
    for (unsigned int i = 0; i < q->numMetrics; i++) {
        int sm = q->metrics[i].metricId == 2;  /* NVML_GPM_METRIC_SM_UTIL */
        q->metrics[i].nvmlReturn = sm ? OK : NOT_SUPPORTED;
        q->metrics[i].value = sm ? q->sample2->d->sm_util : 0;
    }
    return OK;
}
