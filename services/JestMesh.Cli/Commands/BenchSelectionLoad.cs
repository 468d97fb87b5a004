using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using JestMesh.Cli.Demo;
using JestMesh.Client;
using JestMesh.Curation;
using JestMesh.Protos.V1;
using Microsoft.Extensions.Logging.Abstractions;

namespace JestMesh.Cli.Commands;

/// <summary>
/// The load phase of <c>bench-selection</c>: jobs × sessions concurrent Curate sessions with JEST (learnability,
/// joint, 16 chunks, gain 1) against the Selection process. Each session's learner answers at once with embeddings
/// computed before the clock starts, so what is measured is Selection and the broker behind it, not a model.
/// Per curated batch: the client's time from handing over the learner's scores to receiving the batch (an upper
/// bound on Selection's scores-received-to-batch-sent: it adds the two loopback hops and the client's own
/// decoding) and the selection time Selection reports; Selection's resident memory (summed over its replicas) sampled during the load and
/// for a while after it.
/// </summary>
internal static class BenchSelectionLoad
{
    public sealed record Settings(int Jobs, int SessionsPerJob, int BatchesPerSession, double FilterRatio, TimeSpan After, int Replicas);

    public static async Task<Dictionary<string, object>> RunAsync(
        Grpc.Net.Client.GrpcChannel channel, string apiKey, IReadOnlyList<int> selectionPids, Settings settings,
        Func<string, int, Task> publish, Func<string, ContrastiveEmbeddings> learnerView, CancellationToken cancellationToken)
    {
        var jobs = Enumerable.Range(0, settings.Jobs).Select(j => $"load-{j}").ToList();
        // Every session of a job draws from the job's feed: each needs its batches, plus slack for the super-batches
        // a session holds when the others end.
        foreach (var job in jobs)
        {
            await publish(job, (settings.SessionsPerJob * settings.BatchesPerSession) + (2 * settings.SessionsPerJob));
        }

        var rss = new List<(double Seconds, double Mb)>();
        var clock = Stopwatch.StartNew();
        using var stopSampling = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var sampler = SampleRssAsync(selectionPids, clock, rss, stopSampling.Token);
        var learners = jobs.SelectMany(job => Enumerable.Range(0, settings.SessionsPerJob).Select(_ => new InstantLearner(settings.BatchesPerSession, learnerView, job))).ToList();
        var start = clock.Elapsed.TotalSeconds;
        var sessions = learners.Select(learner => new CurateSession(channel, new CurateSettings
        {
            Job = learner.Job,
            ApiKey = apiKey,
            Policy = Policy.Learnability,
            FilterRatio = settings.FilterRatio,
            Chunks = 16,
            Gain = 1,
            // A session that first reaches a replica not serving its job moves on to the next one at once.
            ReconnectDelay = TimeSpan.FromMilliseconds(20),
        }, NullLogger.Instance)).ToList();
        await Task.WhenAll(sessions.Select((session, i) => session.RunAsync(learners[i], cancellationToken)));
        var end = clock.Elapsed.TotalSeconds;
        await Task.Delay(settings.After, cancellationToken);
        await stopSampling.CancelAsync();
        await sampler;

        var latencies = learners.SelectMany(l => l.LatencyMs).ToList();
        var selection = learners.SelectMany(l => l.SelectionMs).ToList();
        var batches = learners.Sum(l => l.Trained);
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
            ["policy"] = "learnability, joint, 16 chunks, gain 1",
            ["batches"] = batches,
            ["seconds"] = end - start,
            ["batches_per_second"] = batches / (end - start),
            ["scores_to_batch_ms"] = Quantiles(latencies),
            ["selection_ms"] = Quantiles(selection),
            ["selection_rss_mb"] = new Dictionary<string, object>
            {
                ["before_load"] = rss.Count > 0 ? rss[0].Mb : double.NaN,
                ["max_during_load"] = during.Count > 0 ? during.Max(s => s.Mb) : double.NaN,
                ["at_load_end"] = during.Count > 0 ? during[^1].Mb : double.NaN,
                ["last_after_load"] = after.Count > 0 ? after[^1].Mb : double.NaN,
                ["seconds_after_load"] = settings.After.TotalSeconds,
                ["samples"] = rss.Select(s => new[] { Math.Round(s.Seconds, 2), Math.Round(s.Mb, 1) }).ToList(),
            },
            ["load_average_end"] = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "",
        };
    }

    /// <summary>The report's quantiles (<see cref="Stats.Quantile"/>, interpolated), the maximum and the count.</summary>
    private static Dictionary<string, double> Quantiles(List<double> values) => values.Count == 0 ? [] : new()
    {
        ["p50"] = Stats.Quantile(values, 0.50),
        ["p99"] = Stats.Quantile(values, 0.99),
        ["max"] = values.Max(),
        ["count"] = values.Count,
    };

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
        private readonly ConcurrentDictionary<string, long> _scoredAt = new();

        public string Job => job;

        public int Trained { get; private set; }

        public List<double> LatencyMs { get; } = [];

        public List<double> SelectionMs { get; } = [];

        public long Remaining => batches - Trained;

        public void SessionOpened(string sessionId)
        {
        }

        public LearnerScores Score(Candidate candidate)
        {
            var scores = LearnerScores.Of(candidate.SuperBatchId, view(candidate.SuperBatchId), Trained);
            _scoredAt[candidate.SuperBatchId] = Stopwatch.GetTimestamp();
            return scores;
        }

        public void Train(CuratedBatch batch)
        {
            if (_scoredAt.TryRemove(batch.SuperBatchId, out var at))
            {
                LatencyMs.Add(Stopwatch.GetElapsedTime(at).TotalMilliseconds);
            }

            SelectionMs.Add(batch.Diagnostics.SelectionMs);
            Trained++;
        }
    }
}
