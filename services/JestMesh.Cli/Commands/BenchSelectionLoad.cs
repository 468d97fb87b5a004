using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using JestMesh.Cli.Demo;
using JestMesh.Client;
using JestMesh.Curation;
using JestMesh.Protos.V1;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace JestMesh.Cli.Commands;

/// <summary>
/// The load phase of <c>bench-selection</c>: jobs × sessions concurrent Curate sessions with JEST (learnability,
/// joint, 16 chunks, gain 1) against the Selection process. Each session's learner answers at once with embeddings
/// computed before the clock starts, so what is measured is Selection and the broker behind it, not a model.
/// Per curated batch: the client's time from handing over the learner's scores to receiving the batch (an upper
/// bound on Selection's scores-received-to-batch-sent: it adds the two loopback hops and the client's own
/// decoding) and the selection time Selection reports; Selection's resident memory (summed over its replicas) sampled during the load and
/// for a while after it. Where the time goes, from public contracts only: the CPU time each process used during the load
/// (/proc/PID/stat of each Selection replica, of this process and of the broker's Erlang VM, found by its pid file) per
/// curated batch, the machine's busy time beside it, and each batch's latency split by the times the batch itself carries
/// (recorded_unix_ms, selection_ms) against the client's clock.
/// </summary>
internal static class BenchSelectionLoad
{
    public sealed record Settings(int Jobs, int SessionsPerJob, int BatchesPerSession, double FilterRatio, TimeSpan After, int Replicas)
    {
        /// <summary>Batches per session of an unmeasured round first (its own jobs), so the measured one runs on warm processes.</summary>
        public int WarmupBatchesPerSession { get; init; }
    }

    /// <summary>The processes whose CPU time is accounted: the Selection replicas, the broker's VMs (may be empty) and this one.</summary>
    public sealed record Processes(IReadOnlyList<int> Selection, IReadOnlyList<int> Broker);

    public static async Task<Dictionary<string, object>> RunAsync(
        Grpc.Net.Client.GrpcChannel channel, string apiKey, Processes processes, Settings settings,
        Func<string, int, Task> publish, Func<string, Task<long?>> queueDepth, Func<string, ContrastiveEmbeddings> learnerView, CancellationToken cancellationToken)
    {
        var loadAverageStart = CpuClock.LoadAverage();
        var selectionPids = processes.Selection;
        Dictionary<string, object>? warmup = null;
        if (settings.WarmupBatchesPerSession > 0)
        {
            // The processes' first batches are paid in JIT compilation (tiered, with PGO: a method is compiled two or
            // three times) and first touches: a round on other jobs first, so the figures below are the steady state.
            var warmJobs = Enumerable.Range(0, settings.Jobs).Select(j => $"warm-{j}").ToList();
            var warmClock = Stopwatch.StartNew();
            await PublishAndRouteAsync(warmJobs, settings.SessionsPerJob, settings.WarmupBatchesPerSession, publish, queueDepth, cancellationToken);
            var routedAt = warmClock.Elapsed.TotalSeconds;
            var cpu = CpuSnapshot.Take(processes);
            var warmLearners = warmJobs.SelectMany(job => Enumerable.Range(0, settings.SessionsPerJob).Select(_ => new InstantLearner(settings.WarmupBatchesPerSession, learnerView, job))).ToList();
            await Task.WhenAll(warmLearners.Select(learner => NewSession(channel, apiKey, settings, learner.Job, NullLogger.Instance).RunAsync(learner, cancellationToken)));
            var seconds = warmClock.Elapsed.TotalSeconds - routedAt;
            var batchCount = warmLearners.Sum(l => l.Trained);
            warmup = new Dictionary<string, object>
            {
                ["about"] = "an unmeasured round on jobs of its own before the load (the processes' JIT compilation and first touches)",
                ["batches"] = batchCount,
                ["seconds"] = seconds,
                ["batches_per_second"] = batchCount / seconds,
                ["cpu"] = CpuSnapshot.Take(processes).Since(cpu, seconds, batchCount, "batch"),
            };
            Console.Error.WriteLine($"bench-selection: load: warm-up {batchCount} batches in {seconds:0.0} s");
        }

        var jobs = Enumerable.Range(0, settings.Jobs).Select(j => $"load-{j}").ToList();
        var perJob = PerJob(settings.SessionsPerJob, settings.BatchesPerSession);
        var routing = CpuSnapshot.Take(processes);
        var routingClock = Stopwatch.StartNew();
        await PublishAndRouteAsync(jobs, settings.SessionsPerJob, settings.BatchesPerSession, publish, queueDepth, cancellationToken);
        var routed = routingClock.Elapsed.TotalSeconds;
        var routingCpu = CpuSnapshot.Take(processes).Since(routing, routed, perJob * jobs.Count, "super_batch");
        Console.Error.WriteLine($"bench-selection: load: {perJob * jobs.Count} super-batches routed in {routed:0.0} s; {jobs.Count * settings.SessionsPerJob} sessions start");

        var rss = new List<(double Seconds, double Mb)>();
        var clock = Stopwatch.StartNew();
        using var stopSampling = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var sampler = SampleRssAsync(selectionPids, clock, rss, stopSampling.Token);
        var learners = jobs.SelectMany(job => Enumerable.Range(0, settings.SessionsPerJob).Select(_ => new InstantLearner(settings.BatchesPerSession, learnerView, job))).ToList();
        var reconnects = new ReconnectLog(clock);
        var cpuStart = CpuSnapshot.Take(processes);
        var runtimeThreads = new RuntimeThreads([.. selectionPids, Environment.ProcessId]);
        runtimeThreads.Sample();
        using var stopThreads = new CancellationTokenSource();
        var threadSampler = Task.Run(async () =>
        {
            while (!stopThreads.IsCancellationRequested)
            {
                await Task.Delay(100, CancellationToken.None);
                runtimeThreads.Sample();
            }
        }, CancellationToken.None);
        var start = clock.Elapsed.TotalSeconds;
        var sessions = learners.Select(learner => NewSession(channel, apiKey, settings, learner.Job, reconnects)).ToList();
        await Task.WhenAll(sessions.Select((session, i) => session.RunAsync(learners[i], cancellationToken)));
        var end = clock.Elapsed.TotalSeconds;
        runtimeThreads.Sample();
        var cpuEnd = CpuSnapshot.Take(processes);
        await stopThreads.CancelAsync();
        await threadSampler;
        Console.Error.WriteLine($"bench-selection: load: {learners.Sum(l => l.Trained)} batches in {end - start:0.0} s");
        await Task.Delay(settings.After, cancellationToken);
        await stopSampling.CancelAsync();
        await sampler;

        var latencies = learners.SelectMany(l => l.LatencyMs).ToList();
        var selection = learners.SelectMany(l => l.SelectionMs).ToList();
        var batches = learners.Sum(l => l.Trained);
        var split = learners.SelectMany(l => l.Split).ToList();
        List<(double Seconds, double Mb)> during, after;
        lock (rss)
        {
            during = rss.Where(s => s.Seconds >= start && s.Seconds <= end).ToList();
            after = rss.Where(s => s.Seconds > end).ToList();
        }

        return new Dictionary<string, object>
        {
            ["jobs"] = settings.Jobs,
            ["sessions"] = settings.Jobs * settings.SessionsPerJob,
            ["selection_replicas"] = selectionPids.Count,
            ["reconnects"] = sessions.Sum(s => s.Stats.Reconnects),
            ["reconnect_reasons"] = reconnects.Summary(start),
            ["policy"] = "learnability, joint, 16 chunks, gain 1",
            ["batches"] = batches,
            ["seconds"] = end - start,
            ["batches_per_second"] = batches / (end - start),
            ["scores_to_batch_ms"] = Quantiles(latencies),
            ["selection_ms"] = Quantiles(selection),
            // One batch's latency in three parts that add up to scores_to_batch_ms, from the batch's own times
            // (recorded_unix_ms is taken after the selection, before the log append; 1 ms resolution) against the client's
            // wall clock on the same machine. Means add up; quantiles of the parts do not.
            ["latency_split_ms"] = new Dictionary<string, object>
            {
                ["about"] = "before_selection: scores handed to the client library -> selection starts (scores serialised, sent, parsed, "
                    + "waiting in the session's loop, e.g. behind a candidate being written); selection: Selection's selection_ms; "
                    + "record_and_send: selection end -> batch received by the client (log append to the broker's confirm, lock check, "
                    + "ack, the batch's serialisation, loopback, client's parse)",
                ["before_selection"] = Quantiles(split.Select(s => s.BeforeSelection).ToList(), mean: true),
                ["selection"] = Quantiles(split.Select(s => s.Selection).ToList(), mean: true),
                ["record_and_send"] = Quantiles(split.Select(s => s.RecordAndSend).ToList(), mean: true),
            },
            ["cpu"] = cpuEnd.Since(cpuStart, end - start, batches, "batch"),
            ["runtime_threads_ms_per_batch"] = new Dictionary<string, object>
            {
                ["about"] = "each process's CPU per batch split by thread name (/proc/PID/task/TID): jit = the tiered JIT's background "
                    + "thread, gc = the GC's threads (lower bounds: threads sampled every 100 ms), rest = the process's CPU less both",
                ["selection"] = ThreadSplit(runtimeThreads.Of(selectionPids), cpuEnd.Selection.Sum() - cpuStart.Selection.Sum(), batches),
                ["bench"] = ThreadSplit(runtimeThreads.Of([Environment.ProcessId]), cpuEnd.Bench - cpuStart.Bench, batches),
            },
            ["routing_before_load"] = routingCpu,
            ["warmup"] = (object?)warmup ?? "none (--load-warmup-batches 0)",
            ["selection_rss_mb"] = new Dictionary<string, object>
            {
                ["before_load"] = rss.Count > 0 ? rss[0].Mb : double.NaN,
                ["max_during_load"] = during.Count > 0 ? during.Max(s => s.Mb) : double.NaN,
                ["at_load_end"] = during.Count > 0 ? during[^1].Mb : double.NaN,
                ["last_after_load"] = after.Count > 0 ? after[^1].Mb : double.NaN,
                ["seconds_after_load"] = settings.After.TotalSeconds,
                ["samples"] = rss.Select(s => new[] { Math.Round(s.Seconds, 2), Math.Round(s.Mb, 1) }).ToList(),
            },
            ["load_average_start"] = loadAverageStart,
            ["load_average_end"] = CpuClock.LoadAverage(),
        };
    }

    private static Dictionary<string, double> ThreadSplit((double Jit, double Gc) runtime, double totalMs, int batches) => new()
    {
        ["jit"] = runtime.Jit / Math.Max(1, batches),
        ["gc"] = runtime.Gc / Math.Max(1, batches),
        ["rest"] = (totalMs - runtime.Jit - runtime.Gc) / Math.Max(1, batches),
    };

    /// <summary>Super-batches published per job: each session's batches, plus slack for the ones a session holds when the others end.</summary>
    private static int PerJob(int sessionsPerJob, int batchesPerSession) => (sessionsPerJob * batchesPerSession) + (2 * sessionsPerJob);

    /// <summary>
    /// Publishes each job's super-batches to jestmesh.scored and waits until the replicas' routers moved them all into the
    /// jobs' queues, so what follows is the serving path alone (the routing is accounted on its own).
    /// </summary>
    private static async Task PublishAndRouteAsync(List<string> jobs, int sessionsPerJob, int batchesPerSession,
        Func<string, int, Task> publish, Func<string, Task<long?>> queueDepth, CancellationToken cancellationToken)
    {
        var perJob = PerJob(sessionsPerJob, batchesPerSession);
        foreach (var job in jobs)
        {
            await publish(job, perJob);
        }
        foreach (var job in jobs)
        {
            while ((await queueDepth(job) ?? 0) < perJob)
            {
                await Task.Delay(20, cancellationToken);
            }
        }
    }

    /// <summary>A JEST Curate session of the load (learnability, joint, 16 chunks, gain 1).</summary>
    private static CurateSession NewSession(Grpc.Net.Client.GrpcChannel channel, string apiKey, Settings settings, string job, ILogger logger) => new(channel, new CurateSettings
    {
        Job = job,
        ApiKey = apiKey,
        Policy = Policy.Learnability,
        FilterRatio = settings.FilterRatio,
        Chunks = 16,
        Gain = 1,
        // A session that first reaches a replica not serving its job moves on to the next one at once.
        ReconnectDelay = TimeSpan.FromMilliseconds(20),
    }, logger);

    /// <summary>The report's quantiles (<see cref="Stats.Quantile"/>, interpolated), the maximum and the count.</summary>
    private static Dictionary<string, double> Quantiles(List<double> values, bool mean = false)
    {
        if (values.Count == 0)
        {
            return [];
        }
        var result = new Dictionary<string, double>
        {
            ["p50"] = Stats.Quantile(values, 0.50),
            ["p99"] = Stats.Quantile(values, 0.99),
            ["max"] = values.Max(),
            ["count"] = values.Count,
        };
        if (mean)
        {
            result["mean"] = values.Average();
        }
        return result;
    }

    /// <summary>CPU milliseconds of every accounted process, and of the machine, at one moment.</summary>
    private sealed record CpuSnapshot(Processes Processes, double[] Selection, double[] Broker, double Bench, (double BusyMs, double TotalMs)? Machine)
    {
        public static CpuSnapshot Take(Processes processes) => new(processes,
            [.. processes.Selection.Select(pid => CpuClock.ProcessMs(pid) ?? double.NaN)],
            [.. processes.Broker.Select(pid => CpuClock.ProcessMs(pid) ?? double.NaN)],
            CpuClock.ProcessMs(Environment.ProcessId) ?? double.NaN,
            CpuClock.MachineMs());

        /// <summary>
        /// CPU used since <paramref name="before"/> per component: milliseconds in all, per unit of work and as cores
        /// busy on average over <paramref name="seconds"/>; "other" is the machine's busy time no accounted process used.
        /// </summary>
        public Dictionary<string, object> Since(CpuSnapshot before, double seconds, int units, string unit)
        {
            var selection = Selection.Select((ms, i) => ms - before.Selection[i]).ToArray();
            var broker = Broker.Select((ms, i) => ms - before.Broker[i]).ToArray();
            var components = new Dictionary<string, double>
            {
                ["selection"] = selection.Sum(),
                ["broker"] = Processes.Broker.Count > 0 ? broker.Sum() : double.NaN,
                ["bench"] = Bench - before.Bench,
            };
            var result = new Dictionary<string, object>
            {
                ["about"] = $"user+system CPU from /proc/PID/stat (10 ms ticks) over the {unit}es; broker = its Erlang VM (beam.smp, from the "
                    + "broker dir's pid file; NaN without --broker-dir); other = the machine's busy time (/proc/stat) no accounted process used",
                ["seconds"] = seconds,
                [$"{unit}es"] = units,
                ["selection_per_replica_ms"] = selection,
            };
            if (Machine is { } now && before.Machine is { } then)
            {
                var busy = now.BusyMs - then.BusyMs;
                components["other"] = busy - components.Values.Where(v => !double.IsNaN(v)).Sum();
                result["machine_busy_ms"] = busy;
                result["machine_cores"] = (now.TotalMs - then.TotalMs) / (seconds * 1000);
            }
            result["ms"] = components;
            result[$"ms_per_{unit}"] = components.ToDictionary(c => c.Key, c => units > 0 ? c.Value / units : double.NaN);
            result["cores_busy"] = components.ToDictionary(c => c.Key, c => seconds > 0 ? c.Value / (seconds * 1000) : double.NaN);
            return result;
        }
    }

    /// <summary>
    /// The .NET runtime's own threads' share of each process's CPU over an interval, by thread name: the JIT's background
    /// tier-up (".NET Tiered Com") and the GC (".NET BGC", ".NET Server GC", ".NET GC"). Threads are sampled while the
    /// interval runs; one that lived between two samples is missed, so both are lower bounds and "rest" (everything else:
    /// the serving itself, sockets, allocation on the serving threads) an upper bound.
    /// </summary>
    private sealed class RuntimeThreads(IReadOnlyList<int> pids)
    {
        private readonly Dictionary<(int Pid, int Tid), (string Name, double First, double Last)> _seen = [];
        private bool _started;

        public void Sample()
        {
            lock (_seen)
            {
                foreach (var pid in pids)
                {
                    foreach (var (tid, name, ms) in CpuClock.ThreadsMs(pid))
                    {
                        // A thread first seen after the first sample started within the interval: all its time counts.
                        _seen[(pid, tid)] = _seen.TryGetValue((pid, tid), out var known) ? known with { Last = ms } : (name, _started ? 0 : ms, ms);
                    }
                }
                _started = true;
            }
        }

        /// <summary>JIT and GC milliseconds over all of <paramref name="subset"/>.</summary>
        public (double Jit, double Gc) Of(IEnumerable<int> subset)
        {
            var set = subset.ToHashSet();
            lock (_seen)
            {
                var mine = _seen.Where(t => set.Contains(t.Key.Pid)).Select(t => (t.Value.Name, Ms: t.Value.Last - t.Value.First)).ToList();
                return (mine.Where(t => t.Name.StartsWith(".NET Tiered", StringComparison.Ordinal)).Sum(t => t.Ms),
                    mine.Where(t => t.Name.StartsWith(".NET BGC", StringComparison.Ordinal) || t.Name.StartsWith(".NET Server GC", StringComparison.Ordinal)
                        || t.Name.StartsWith(".NET GC", StringComparison.Ordinal)).Sum(t => t.Ms));
            }
        }
    }

    /// <summary>
    /// The client library's reconnect warnings, by reason and time (its structured log state, in this process): whether
    /// sessions reconnect only when they open (a replica not serving their job) or during the load.
    /// </summary>
    private sealed class ReconnectLog(Stopwatch clock) : ILogger
    {
        private readonly List<(double Seconds, string Reason)> _entries = [];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (state is IReadOnlyList<KeyValuePair<string, object?>> fields && fields.FirstOrDefault(f => f.Key == "Reason").Value is string reason)
            {
                lock (_entries)
                {
                    _entries.Add((clock.Elapsed.TotalSeconds, reason));
                }
            }
        }

        /// <summary>Per distinct reason (ids and numbers in it masked): how many, and the first and last time after <paramref name="start"/>.</summary>
        public List<Dictionary<string, object>> Summary(double start)
        {
            lock (_entries)
            {
                return [.. _entries.GroupBy(e => Mask(e.Reason)).Select(g => new Dictionary<string, object>
                {
                    ["reason"] = g.Key,
                    ["count"] = g.Count(),
                    ["first_seconds"] = Math.Round(g.Min(e => e.Seconds) - start, 3),
                    ["last_seconds"] = Math.Round(g.Max(e => e.Seconds) - start, 3),
                })];
            }
        }

        private static string Mask(string reason) => System.Text.RegularExpressions.Regex.Replace(reason, "'load-[0-9]+'|[0-9a-f]{32}|[0-9]+", "#");
    }

    /// <summary>VmRSS summed over the processes <paramref name="pids"/> every 250 ms until cancelled.</summary>
    private static async Task SampleRssAsync(IReadOnlyList<int> pids, Stopwatch clock, List<(double Seconds, double Mb)> samples, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            double kb = 0;
            var seen = 0;
            foreach (var pid in pids)
            {
                var status = $"/proc/{pid}/status";
                var line = File.Exists(status) ? File.ReadLines(status).FirstOrDefault(l => l.StartsWith("VmRSS:", StringComparison.Ordinal)) : null;
                if (line is not null && double.TryParse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], NumberStyles.Float, CultureInfo.InvariantCulture, out var one))
                {
                    kb += one;
                    seen++;
                }
            }

            if (seen == pids.Count)
            {
                lock (samples)
                {
                    samples.Add((clock.Elapsed.TotalSeconds, kb / 1024));
                }
            }

            try
            {
                await Task.Delay(250, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>A learner that scores at once (precomputed embeddings per super-batch) and trains on nothing; it times each batch.</summary>
    private sealed class InstantLearner(int batches, Func<string, ContrastiveEmbeddings> view, string job) : ICurateLearner
    {
        // Each template's scores encoded once for all sessions (a clone shares the tensors' immutable bytes): the learner
        // answers at once, and the bench spends its CPU on the protocol, as a trainer would, not on re-encoding.
        private static readonly ConcurrentDictionary<ContrastiveEmbeddings, LearnerScores> Encoded = new(ReferenceEqualityComparer.Instance);

        private readonly ConcurrentDictionary<string, (long Timestamp, double UnixMs)> _scoredAt = new();

        public string Job => job;

        public int Trained { get; private set; }

        public List<double> LatencyMs { get; } = [];

        public List<double> SelectionMs { get; } = [];

        /// <summary>Per batch: scores handed over → selection start, the selection, selection end → batch received (ms).</summary>
        public List<(double BeforeSelection, double Selection, double RecordAndSend)> Split { get; } = [];

        public long Remaining => batches - Trained;

        public void SessionOpened(string sessionId)
        {
        }

        public LearnerScores Score(Candidate candidate)
        {
            var scores = Encoded.GetOrAdd(view(candidate.SuperBatchId), v => LearnerScores.Of("", v, 0)).Clone();
            scores.SuperBatchId = candidate.SuperBatchId;
            scores.LearnerStep = Trained;
            _scoredAt[candidate.SuperBatchId] = (Stopwatch.GetTimestamp(), UnixMsNow());
            return scores;
        }

        public void Train(CuratedBatch batch)
        {
            var receivedUnixMs = UnixMsNow();
            if (_scoredAt.TryRemove(batch.SuperBatchId, out var at))
            {
                LatencyMs.Add(Stopwatch.GetElapsedTime(at.Timestamp).TotalMilliseconds);
                if (batch.RecordedUnixMs > 0)
                {
                    var selection = batch.Diagnostics.SelectionMs;
                    Split.Add((batch.RecordedUnixMs - selection - at.UnixMs, selection, receivedUnixMs - batch.RecordedUnixMs));
                }
            }

            SelectionMs.Add(batch.Diagnostics.SelectionMs);
            Trained++;
        }

        private static double UnixMsNow() => (DateTime.UtcNow - DateTime.UnixEpoch).TotalMilliseconds;
    }
}
