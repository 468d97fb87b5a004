using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using JestMesh.Protos;

namespace JestMesh.Cli.Demo;

/// <summary>Settings of one <c>./jestmesh chaos</c> run.</summary>
internal sealed record ChaosOptions
{
    public required int Trials { get; init; }

    public required int Seed { get; init; }

    public required string Out { get; init; }

    /// <summary>Learner steps per trainer per trial (T).</summary>
    public int Steps { get; init; } = 120;

    /// <summary>Learner batch b (N = b / (1 − f) candidates per super-batch at f = 0.8).</summary>
    public int BatchSize { get; init; } = 32;

    /// <summary>A trial that has not finished by then is stopped and reported as failed, with why.</summary>
    public TimeSpan TrialDeadline { get; init; } = TimeSpan.FromMinutes(5);

    public string? Reference { get; init; }

    /// <summary>The kinds of component the plan kills (default all four).</summary>
    public IReadOnlyList<string> Components { get; init; } = ChaosComponents.All;
}

/// <summary>
/// <c>./jestmesh chaos</c>: the local cluster (3 broker nodes, 2 Scoring, 2 Selection on the <see cref="LocalPipeline"/>), then per
/// trial two trainers on two fresh jobs (an Ingest and a Trainer each, as <see cref="RunDriver"/> starts them) and one SIGKILL
/// from the seeded <see cref="ChaosPlan"/>, the victim restarted at once. After each trial it accounts every produced example
/// (<see cref="ChaosAccounting"/>) from public contracts only: the Trainers' run-summary.json, Selection's batch log, the
/// dead-letter queue; and the recovery time from the kill to the end of the first training step that started after it (the
/// trainers' trainer.step spans). A fault-free baseline of the same jobs runs first. Writes DIR/chaos.json after every trial.
/// </summary>
internal sealed class ChaosRunner(ChaosOptions options, Repo repo, TextWriter stdout)
{
    private const double FilterRatio = 0.8;
    private const int CheckpointEvery = 10;
    private static readonly TimeSpan SettleDeadline = TimeSpan.FromSeconds(90);
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };
    private static readonly TimeSpan SpanDeadline = TimeSpan.FromSeconds(15);
    private static readonly string[] JobSuffixes = ["a", "b"];

    public async Task<int> RunAsync(CancellationToken cancellationToken)
    {
        var outDir = Path.GetFullPath(options.Out);
        Directory.CreateDirectory(outDir);
        var plan = new DemoPlan
        {
            Quick = true,
            Steps = options.Steps,
            EvalEvery = 0,
            BatchSize = options.BatchSize,
            Runs = [new RunPlan(RunNames.Learnability, false, FilterRatio)],
        };
        var kills = ChaosPlan.Create(options.Trials, options.Seed, brokerNodes: 3, scoringReplicas: 2, selectionReplicas: 2, trainers: JobSuffixes.Length, options.Components);
        var report = new ChaosReport
        {
            Command = $"./jestmesh chaos --trials {options.Trials} --seed {options.Seed} --steps {options.Steps} --batch-size {options.BatchSize} --out {options.Out}",
            Seed = options.Seed,
            Steps = options.Steps,
            BatchSize = options.BatchSize,
            LoadAverageAtStart = LoadAverage(),
            StartedUtc = DateTime.UtcNow,
        };
        var wall = Stopwatch.StartNew();
        await DemoRunner.SetupAsync(repo, cancellationToken);
        await repo.EnsureBuiltAsync(DemoRunner.Hosts, Say, cancellationToken);
        var reference = await DemoRunner.EnsureReferenceAsync(repo, options.Reference, DemoPlan.Create(quick: false, withF05: false), Say, cancellationToken);
        // The broker's data (and its logs) stay in DIR/pipeline/broker after the run, for a node that would not come back; a new run starts afresh.
        var pipelineDir = Path.Combine(outDir, "pipeline");
        if (Directory.Exists(pipelineDir))
        {
            Directory.Delete(pipelineDir, recursive: true);
        }

        var settings = new PipelineSettings { BrokerNodes = 3, ScoringReplicas = 2, SelectionReplicas = 2, KeepBrokerData = true };
        await using var pipeline = new LocalPipeline(repo, pipelineDir, otlpForward: null, Say, settings);
        await pipeline.StartAsync(reference, cancellationToken);
        var trials = new Trials(pipeline, plan, outDir, Say);

        Say($"baseline: the same two jobs without faults (T = {plan.Steps}, b = {plan.BatchSize}, N = {plan.SuperBatchSize(FilterRatio)})");
        var baseline = await trials.RunAsync("base", kill: null, baseline: null, options.TrialDeadline, cancellationToken);
        report.Baseline = baseline;
        if (!baseline.Ok)
        {
            Write(outDir, report, wall);
            throw new InvalidOperationException($"the fault-free baseline failed: {baseline.Error}");
        }

        var baselineIds = baseline.Jobs.ToDictionary(j => j.Suffix, j => (IReadOnlyList<string>)j.TrainedUnqualified);
        foreach (var kill in kills)
        {
            var trial = await trials.RunAsync($"t{kill.Trial}", kill, baselineIds, options.TrialDeadline, cancellationToken);
            report.Details.Add(trial);
            Say($"trial {kill.Trial}: killed {trial.Victim} at step {trial.KillAtStep} ({trial.KillAtMs:0} ms); {(trial.Ok ? "ok" : "FAILED: " + trial.Error)}; " +
                $"lost {trial.Lost}, duplicated {trial.Duplicated}, sequence mismatches {trial.SequenceMismatches}, recovery {trial.RecoveryMs?.ToString("0", CultureInfo.InvariantCulture) ?? "-"} ms");
            Write(outDir, report, wall);
        }

        Write(outDir, report, wall);
        Say($"chaos: {Path.Combine(outDir, "chaos.json")}");
        return report.Details.All(t => t.Ok && t.Lost == 0 && t.Duplicated == 0 && t.SequenceMismatches == 0) ? 0 : 1;
    }

    private static void Write(string outDir, ChaosReport report, Stopwatch wall)
    {
        report.Trials = report.Details.Count;
        report.WallSeconds = Math.Round(wall.Elapsed.TotalSeconds, 1);
        report.LoadAverageAtEnd = LoadAverage();
        report.Kills = ChaosComponents.All.ToDictionary(c => c, c => report.Details.Count(t => t.Component == c));
        report.Lost = report.Details.Sum(t => t.Lost);
        report.Duplicated = report.Details.Sum(t => t.Duplicated);
        report.SequenceMismatches = report.Details.Sum(t => t.SequenceMismatches);
        report.FailedTrials = report.Details.Count(t => !t.Ok);
        report.RecoveryMs = RecoveryFigures.Of(report.Details.Where(t => t.RecoveryMs is not null).Select(t => t.RecoveryMs!.Value).ToList());
        report.RecoveryMsByComponent = ChaosComponents.All.ToDictionary(c => c,
            c => RecoveryFigures.Of(report.Details.Where(t => t.Component == c && t.RecoveryMs is not null).Select(t => t.RecoveryMs!.Value).ToList()));
        File.WriteAllText(Path.Combine(outDir, "chaos.json"), JsonSerializer.Serialize(report, Indented));
    }

    /// <summary>The 1-minute load average (/proc/loadavg), or -1 where there is none.</summary>
    private static double LoadAverage() =>
        File.Exists("/proc/loadavg") && double.TryParse(File.ReadAllText("/proc/loadavg").Split(' ')[0], NumberStyles.Float, CultureInfo.InvariantCulture, out var l) ? l : -1;

    private void Say(string message)
    {
        stdout.WriteLine($"{DateTime.Now:HH:mm:ss} {message}");
        stdout.Flush();
    }

    /// <summary>Runs one trial on the pipeline: its two jobs, its kill, its accounting.</summary>
    private sealed class Trials(LocalPipeline pipeline, DemoPlan plan, string outDir, Action<string> say)
    {
        private readonly RunPlan _run = plan.Runs[0];

        public async Task<ChaosTrial> RunAsync(string name, ChaosKill? kill, IReadOnlyDictionary<string, IReadOnlyList<string>>? baseline, TimeSpan deadline, CancellationToken cancellationToken)
        {
            var trial = new ChaosTrial { Name = name, Component = kill?.Component ?? "", Replica = kill?.Replica ?? 0, Leader = kill?.Leader ?? false };
            var n = plan.SuperBatchSize(FilterRatio);
            var started = DateTimeOffset.UtcNow;
            var clock = Stopwatch.StartNew();
            var jobs = JobSuffixes.Select(s => (Suffix: s, Job: $"chaos-{name}-{s}", Dir: Path.Combine(outDir, "trials", name, s))).ToList();
            var ingests = new List<ChildProcess>();
            var trainers = new List<ChildProcess>();
            using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            limit.CancelAfter(deadline);
            try
            {
                foreach (var (suffix, job, dir) in jobs)
                {
                    if (Directory.Exists(dir))
                    {
                        Directory.Delete(dir, recursive: true);
                    }

                    ingests.Add(pipeline.Start("JestMesh.Ingest", RunDriver.IngestSettings(plan, job, n, plan.Steps, ((long)plan.Steps * n / 50_000) + 2), logName: $"ingest-{name}-{suffix}"));
                    trainers.Add(pipeline.Start("JestMesh.Trainer", RunDriver.TrainerSettings(pipeline, plan, _run, job, Path.Combine(dir, "trainer"), CheckpointEvery),
                        logName: $"trainer-{name}-{suffix}"));
                }

                if (kill is not null)
                {
                    // The moment is a point in training, not on the clock: the same seed kills at the same step on a quiet or a busy machine.
                    var atStep = (int)Math.Ceiling(kill.AtFraction * plan.Steps);
                    trial.KillAtStep = atStep;
                    int? leader = null;
                    if (kill is { Component: ChaosComponents.Broker, Leader: true })
                    {
                        // Asked ahead (rabbitmqctl takes seconds on a busy machine, the trainers would be steps further by the kill);
                        // the job's queue exists once its first batch was trained.
                        await WaitForTrainersAsync(trainers, ingests, until: () => StepsTrained(jobs[0].Job) >= 1, limit.Token);
                        leader = await pipeline.QueueLeaderPortAsync(LocalPipeline.Topology.JobQueue(jobs[0].Job), limit.Token);
                    }

                    await WaitForTrainersAsync(trainers, ingests, until: () => jobs.All(j => StepsTrained(j.Job) >= atStep), limit.Token);
                    trial.KillAtMs = clock.Elapsed.TotalMilliseconds;
                    await KillAsync(kill, trial, leader, trainers, limit.Token);
                }

                await WaitForTrainersAsync(trainers, ingests, until: null, limit.Token);
                trial.TrainingMs = clock.Elapsed.TotalMilliseconds;
                await AccountAsync(trial, jobs, trainers, n, started, baseline, limit.Token);
                trial.Ok = trial.Error is null;
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                trial.Error = $"timed out after {deadline.TotalSeconds:0} s: " + string.Join("; ", jobs.Select(j =>
                    $"{j.Job} at step {RunSummaryFile.TryRead(RunSummaryFile.PathIn(Path.Combine(j.Dir, "trainer")))?.Step ?? 0} of {plan.Steps} by its run summary (checkpoints every {CheckpointEvery})"));
            }
            catch (Exception e) when (e is InvalidOperationException or InvalidDataException or TimeoutException or IOException or JsonException)
            {
                trial.Error = e.Message;
            }
            finally
            {
                foreach (var p in ingests.Concat(trainers))
                {
                    await pipeline.StopAsync(p);
                }

                trial.WallMs = clock.Elapsed.TotalMilliseconds;
                trial.Restarted.AddRange(await RestartExitedServicesAsync());
                if (trial.Error is not null)
                {
                    // Whatever stalled this trial must not fail the next ones too: every Selection replica starts afresh (named here).
                    for (var i = 0; i < pipeline.Selections.Count; i++)
                    {
                        await pipeline.KillAndRestartAsync(pipeline.Selections[i], CancellationToken.None);
                        trial.Restarted.Add($"selection replica {i}, after the failed trial");
                    }
                }
            }

            return trial;
        }

        /// <summary>Steps <paramref name="job"/>'s trainer has trained so far, by its trainer.step spans (they arrive a second or two late).</summary>
        private int StepsTrained(string job) => pipeline.Spans.Count(s => IsStepOf(s, job));

        private static bool IsStepOf(SpanRecord s, string job) => s.Name == JestMesh.Protos.Telemetry.Spans.TrainerStep
            && s.Attributes.GetValueOrDefault(JestMesh.Protos.Telemetry.Attributes.SuperBatchId)?.StartsWith(job + "/", StringComparison.Ordinal) == true;

        /// <summary>Waits until both trainers exited 0 (or, with <paramref name="until"/>, until it holds); a trainer or Ingest that fails ends the trial.</summary>
        private static async Task WaitForTrainersAsync(List<ChildProcess> trainers, List<ChildProcess> ingests, Func<bool>? until, CancellationToken cancellationToken)
        {
            while (!trainers.All(t => t.HasExited) && until?.Invoke() != true)
            {
                if (trainers.Concat(ingests).FirstOrDefault(p => p.HasExited && p.ExitCode != 0) is { } failed)
                {
                    throw new InvalidOperationException($"{failed.Name} ({Path.GetFileName(failed.LogPath)}) exited with {failed.ExitCode}; its log ends:\n{failed.Tail()}");
                }

                await Task.Delay(200, cancellationToken);
            }

            if (trainers.FirstOrDefault(p => p.HasExited && p.ExitCode != 0) is { } trainer)
            {
                throw new InvalidOperationException($"{Path.GetFileName(trainer.LogPath)} exited with {trainer.ExitCode}; its log ends:\n{trainer.Tail()}");
            }
        }

        /// <summary>
        /// SIGKILLs the planned victim (for a broker kill of the leader, node <paramref name="leader"/> when it was known) and restarts
        /// it; records in <paramref name="trial"/> what it was and when it was killed (Unix ms).
        /// </summary>
        private async Task KillAsync(ChaosKill kill, ChaosTrial trial, int? leader, List<ChildProcess> trainers, CancellationToken cancellationToken)
        {
            void Killed(string victim)
            {
                trial.KillUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
                trial.Victim = victim;
            }

            switch (kill.Component)
            {
                case ChaosComponents.Broker:
                    var port = leader ?? pipeline.BrokerNodePorts[kill.Replica];
                    Killed($"broker node {port}{(leader is null ? "" : " (leader of the first job's queue)")}");
                    await pipeline.KillBrokerNodeAsync(port, cancellationToken);
                    say($"killed {trial.Victim}; restarting it");
                    await pipeline.RestartDeadBrokerNodesAsync(cancellationToken);
                    break;
                case ChaosComponents.Scoring:
                case ChaosComponents.Selection:
                    var replicas = kill.Component == ChaosComponents.Scoring ? pipeline.Scorings : pipeline.Selections;
                    Killed($"{kill.Component} replica {kill.Replica}");
                    await pipeline.KillAndRestartAsync(replicas[kill.Replica], cancellationToken);
                    break;
                default:
                    Killed($"trainer {JobSuffixes[kill.Replica]}");
                    trainers[kill.Replica] = await pipeline.KillAndRestartAsync(trainers[kill.Replica], cancellationToken);
                    break;
            }
        }

        /// <summary>Scoring or Selection processes that exited without being killed by the plan: started again, and named in the trial.</summary>
        private async Task<List<string>> RestartExitedServicesAsync()
        {
            var restarted = new List<string>();
            foreach (var p in pipeline.Scorings.Concat(pipeline.Selections).Where(p => p.HasExited).ToList())
            {
                restarted.Add($"{Path.GetFileName(p.LogPath)} had exited by itself with {p.ExitCode}");
                await pipeline.RestartAsync(p);
            }

            return restarted;
        }

        private async Task AccountAsync(ChaosTrial trial, List<(string Suffix, string Job, string Dir)> jobs, List<ChildProcess> trainers, int n, DateTimeOffset started,
            IReadOnlyDictionary<string, IReadOnlyList<string>>? baseline, CancellationToken cancellationToken)
        {
            // The batch log from shortly before the trial (the stream's timestamps are per chunk), read afresh after the kills.
            await using var log = await pipeline.Probe.FollowLogAsync(LocalPipeline.LogStream, cancellationToken, started.AddSeconds(-30));
            var dead = await pipeline.Probe.DrainDeadLetterRecordsAsync(LocalPipeline.DeadLetterQueue, cancellationToken);
            var problems = new List<string>();
            foreach (var (suffix, job, dir) in jobs)
            {
                var summary = await RunResults.WaitForFinishedAsync(RunSummaryFile.PathIn(Path.Combine(dir, "trainer")), SettleDeadline, cancellationToken);
                var batches = (await log.WaitForAsync(job, plan.Steps, SettleDeadline, cancellationToken)).Where(b => b.SessionId == summary.SessionId).ToList();
                var evidence = new JobEvidence(job, [.. Enumerable.Range(0, plan.Steps).Select(i => JestMesh.Protos.V1.SuperBatchBuilder.SuperBatchId(job, i))], n,
                    [.. summary.TrainedSuperBatchIds], batches, [.. dead.Where(d => d.Job == job)], baseline?.GetValueOrDefault(suffix));
                var account = ChaosAccounting.Account(evidence);
                trial.Jobs.Add(new ChaosJob
                {
                    Suffix = suffix,
                    Account = account,
                    Reconnects = summary.Reconnects,
                    Cursor = summary.Cursor,
                    TrainedUnqualified = [.. summary.TrainedSuperBatchIds.Select(ChaosAccounting.Unqualified)],
                });
                problems.AddRange(account.Problems.Take(3).Select(p => $"{job}: {p}"));
            }

            trial.Lost = trial.Jobs.Sum(j => j.Account.Lost);
            trial.Duplicated = trial.Jobs.Sum(j => j.Account.Duplicated);
            trial.SequenceMismatches = trial.Jobs.Count(j => j.Account.SequenceMismatch);
            if (trial.KillUnixMs is { } kill)
            {
                trial.RecoveryMs = await RecoveryAsync([.. jobs.Zip(trial.Jobs, (j, account) => (j.Job, account.Cursor))], trial, kill, cancellationToken);
            }

            if (problems.Count > 0)
            {
                trial.Notes.AddRange(problems);
            }
        }

        /// <summary>
        /// Kill to the end of the first training step that started after it, for the trainer that took longest (trainer.step spans;
        /// a trainer that had finished by the kill does not count). Null when no trainer trained after the kill.
        /// </summary>
        private async Task<double?> RecoveryAsync(List<(string Job, long Cursor)> jobs, ChaosTrial trial, long killUnixMs, CancellationToken cancellationToken)
        {
            var killNs = killUnixMs * 1_000_000;

            // Spans reach the receiver a second or two after they end (the exporters' batch delay): wait for each trainer's last step.
            var waited = Stopwatch.StartNew();
            var last = jobs.Select(j => (j.Job, Sequence: j.Cursor.ToString(CultureInfo.InvariantCulture))).ToList();
            while (waited.Elapsed < SpanDeadline && !last.All(j => pipeline.Spans.Any(s => IsStepOf(s, j.Job) && s.Attributes.GetValueOrDefault(JestMesh.Protos.Telemetry.Attributes.Sequence) == j.Sequence)))
            {
                await Task.Delay(250, cancellationToken);
            }

            var spans = pipeline.Spans;
            foreach (var (job, account) in jobs.Select(j => j.Job).Zip(trial.Jobs))
            {
                account.StepSpans = spans.Count(s => IsStepOf(s, job));
                account.StepSpansAfterKill = spans.Count(s => IsStepOf(s, job) && s.StartUnixNano > killNs);
            }

            var firsts = jobs.Select(j => spans.Where(s => IsStepOf(s, j.Job) && s.StartUnixNano > killNs).Select(s => (double?)((s.EndUnixNano - killNs) / 1e6)).Min()).ToList();
            return firsts.Max() is { } ms ? Math.Round(ms, 1) : null;
        }
    }
}

/// <summary>p50, p99 and max of recovery times, milliseconds (null where there are none).</summary>
internal sealed record RecoveryFigures([property: JsonPropertyName("p50")] double? P50, [property: JsonPropertyName("p99")] double? P99,
    [property: JsonPropertyName("max")] double? Max, [property: JsonPropertyName("count")] int Count)
{
    public static RecoveryFigures Of(IReadOnlyList<double> values) => values.Count == 0
        ? new RecoveryFigures(null, null, null, 0)
        : new RecoveryFigures(Math.Round(Stats.Quantile(values, 0.5), 1), Math.Round(Stats.Quantile(values, 0.99), 1), values.Max(), values.Count);
}

/// <summary>DIR/chaos.json.</summary>
internal sealed class ChaosReport
{
    [JsonPropertyName("command")] public string Command { get; init; } = "";
    [JsonPropertyName("seed")] public int Seed { get; init; }
    [JsonPropertyName("steps")] public int Steps { get; init; }
    [JsonPropertyName("batch_size")] public int BatchSize { get; init; }
    [JsonPropertyName("started_utc")] public DateTime StartedUtc { get; init; }
    [JsonPropertyName("wall_seconds")] public double WallSeconds { get; set; }
    [JsonPropertyName("load_average_start")] public double LoadAverageAtStart { get; init; }
    [JsonPropertyName("load_average_end")] public double LoadAverageAtEnd { get; set; }
    [JsonPropertyName("trials")] public int Trials { get; set; }
    [JsonPropertyName("failed_trials")] public int FailedTrials { get; set; }
    [JsonPropertyName("kills")] public Dictionary<string, int> Kills { get; set; } = [];

    /// <summary>Produced examples with no effect (neither trained, filtered nor dead-lettered), over all trials.</summary>
    [JsonPropertyName("lost")] public long Lost { get; set; }

    /// <summary>Effects beyond the first, over all trials.</summary>
    [JsonPropertyName("duplicated")] public long Duplicated { get; set; }

    /// <summary>Trainers whose trained sequence differs from their session's batch log.</summary>
    [JsonPropertyName("sequence_mismatches")] public int SequenceMismatches { get; set; }

    [JsonPropertyName("recovery_ms")] public RecoveryFigures RecoveryMs { get; set; } = RecoveryFigures.Of([]);
    [JsonPropertyName("recovery_ms_by_component")] public Dictionary<string, RecoveryFigures> RecoveryMsByComponent { get; set; } = [];
    [JsonPropertyName("baseline")] public ChaosTrial? Baseline { get; set; }
    [JsonPropertyName("trial_details")] public List<ChaosTrial> Details { get; } = [];
}

/// <summary>One trial of chaos.json.</summary>
internal sealed class ChaosTrial
{
    [JsonPropertyName("name")] public string Name { get; init; } = "";
    [JsonPropertyName("component")] public string Component { get; init; } = "";
    [JsonPropertyName("replica")] public int Replica { get; init; }
    [JsonPropertyName("leader")] public bool Leader { get; init; }
    [JsonPropertyName("victim")] public string Victim { get; set; } = "";
    [JsonPropertyName("kill_at_step")] public int KillAtStep { get; set; }
    [JsonPropertyName("kill_at_ms")] public double KillAtMs { get; set; }
    [JsonPropertyName("kill_unix_ms")] public long? KillUnixMs { get; set; }
    [JsonPropertyName("recovery_ms")] public double? RecoveryMs { get; set; }
    [JsonPropertyName("training_ms")] public double TrainingMs { get; set; }
    [JsonPropertyName("wall_ms")] public double WallMs { get; set; }
    [JsonPropertyName("ok")] public bool Ok { get; set; }
    [JsonPropertyName("error")] public string? Error { get; set; }
    [JsonPropertyName("lost")] public long Lost { get; set; }
    [JsonPropertyName("duplicated")] public long Duplicated { get; set; }
    [JsonPropertyName("sequence_mismatches")] public int SequenceMismatches { get; set; }
    [JsonPropertyName("jobs")] public List<ChaosJob> Jobs { get; } = [];
    [JsonPropertyName("restarted")] public List<string> Restarted { get; } = [];
    [JsonPropertyName("notes")] public List<string> Notes { get; } = [];
}

/// <summary>One trainer's job in a trial.</summary>
internal sealed class ChaosJob
{
    [JsonPropertyName("job")] public string Suffix { get; init; } = "";
    [JsonPropertyName("account")] public required JobAccount Account { get; init; }
    [JsonPropertyName("reconnects")] public long Reconnects { get; init; }
    [JsonPropertyName("cursor")] public long Cursor { get; init; }

    /// <summary>trainer.step spans received for the job, and those that started after the kill.</summary>
    [JsonPropertyName("step_spans")] public int StepSpans { get; set; }
    [JsonPropertyName("step_spans_after_kill")] public int StepSpansAfterKill { get; set; }
    [JsonIgnore] public List<string> TrainedUnqualified { get; init; } = [];
}
