using System.Diagnostics;
using JestMesh.Models;
using JestMesh.Protos.V1;
using JestMesh.TestKit;
using Microsoft.Extensions.Logging.Abstractions;

namespace JestMesh.Trainer.Tests;

/// <summary>
/// Broker → Selection (real Kestrel) → Trainer (real TorchSharp learner) for a few dozen steps. The
/// scored super-batches come from <see cref="ScoredFeeder"/> (real pairs, real reference model) in
/// place of Ingest → Scoring, which live on another branch.
/// </summary>
[Collection(SelectionCollection.Name)]
[Trait("Tier", "EndToEnd")]
public sealed class EndToEndTests(SelectionFixture fixture) : IDisposable
{
    private const int N = 160;
    private const int Steps = 24;
    private const ulong Seed = 3;
    private static readonly TimeSpan Deadline = TimeSpan.FromMinutes(3);
    private readonly string _checkpoints = Path.Combine(Path.GetTempPath(), $"jm-trainer-{Guid.NewGuid():N}");

    private TrainerOptions Options(int port, string job) => new()
    {
        SelectionAddress = $"http://127.0.0.1:{port}",
        ApiKey = SelectionHost.ApiKey,
        Job = job,
        Policy = Policy.Learnability,
        FilterRatio = 0.8,
        Chunks = 4,
        Gain = 10,
        Seed = Seed,
        Steps = Steps,
        WarmupSteps = 5,
        EvalEvery = 12,
        EvalLimit = 500,
        CheckpointEvery = 5,
        CheckpointDirectory = _checkpoints,
        ReconnectDelay = TimeSpan.FromMilliseconds(100),
        ReconnectMaxDelay = TimeSpan.FromSeconds(1),
    };

    [Fact]
    public async Task Trainer_accounts_for_every_id_and_links_traces()
    {
        using var spans = new SpanRecorder();
        var prefix = TestNames.Unique("e2e");
        var messaging = fixture.Broker.Options(prefix);
        await using var host = await SelectionHost.StartAsync(messaging, kestrel: true);
        await using var broker = new BrokerClient(messaging);
        var published = new List<ScoredSuperBatch>();
        var traces = new Dictionary<string, ActivityTraceId>();
        for (var i = 0; i < Steps; i++)
        {
            var scored = fixture.Feeder.Make("job", i, N);
            traces[scored.Id] = await ScoredFeeder.PublishAsync(broker.Publisher, broker.Topology, scored);
            published.Add(scored);
        }
        // One poison super-batch (NaN in the reference embeddings): its ids are dead-lettered.
        var poison = fixture.Feeder.Make("job", Steps, N);
        var values = poison.ReferenceTextEmbeddings.ToFloat32("x", N, -1);
        values[0] = float.NaN;
        poison.ReferenceTextEmbeddings = Protos.V1.Tensor.FromFloat32(values, N, values.Length / N);
        await ScoredFeeder.PublishAsync(broker.Publisher, broker.Topology, poison);

        var options = Options(host.Port!.Value, "job");
        var trained = new List<CuratedBatch>();
        using (var channel = TrainerServiceExtensions.CreateChannel(options))
        using (var evaluator = new Evaluator(fixture.Feeder.Data, limit: 500))
        using (var trainer = new CuratedTrainer(options, channel, evaluator, NullLogger.Instance) { BatchTrained = trained.Add })
        {
            await trainer.RunAsync(CancellationToken.None).WaitAsync(Deadline);
            Assert.Equal(Steps, trainer.State.Step);
            Assert.Equal(Steps, trainer.State.Cursor);
            Assert.Equal([12, 24], trainer.State.Evals.Select(e => e.Step));
        }

        // Accounting: produced = trained + filtered + dead-lettered, every id exactly once.
        var dead = await DeadLetteredIdsAsync(broker, expected: N);
        var accounted = trained.SelectMany(b => b.Examples.Select(e => e.Id)).Concat(trained.SelectMany(b => b.FilteredIds)).Concat(dead).ToList();
        var produced = published.Append(poison).SelectMany(p => p.Examples.Select(e => e.Id)).ToList();
        Assert.Equal(produced.Count, accounted.Count);
        Assert.Equal(produced.Order(), accounted.Order());
        Assert.Equal(Enumerable.Range(1, Steps).Select(i => (long)i), trained.Select(b => b.Sequence));
        Assert.All(trained, b => Assert.Equal(32, b.Examples.Count));

        // One trace per super-batch: the trainer's step joins the trace its super-batch was published in.
        var steps = spans.Stopped.Where(a => a.OperationName == "trainer.step").ToList();
        Assert.Equal(Steps, steps.Count);
        foreach (var step in steps)
        {
            var superBatch = (string)step.GetTagItem("jestmesh.super_batch.id")!;
            Assert.Equal(traces[superBatch], step.TraceId);
        }
        var selects = spans.Stopped.Where(a => a.OperationName == "selection.select").ToList();
        Assert.All(selects, s => Assert.Single(s.Links));
        Assert.All(selects, s => Assert.Equal(traces[(string)s.GetTagItem("jestmesh.super_batch.id")!], s.TraceId));
    }

    [Fact]
    public async Task Scoring_one_step_ahead_trains_every_batch_once_with_learner_scores_one_step_stale()
    {
        var messaging = fixture.Broker.Options(TestNames.Unique("ahead"));
        await using var host = await SelectionHost.StartAsync(messaging, kestrel: true);
        await using var broker = new BrokerClient(messaging);
        var produced = new List<long>();
        for (var i = 0; i < Steps; i++)
        {
            var scored = fixture.Feeder.Make("ahead", i, N);
            await ScoredFeeder.PublishAsync(broker.Publisher, broker.Topology, scored);
            produced.AddRange(scored.Examples.Select(e => e.Id));
        }

        var options = Options(host.Port!.Value, "ahead");
        options.ScoreAhead = 1;
        options.EvalEvery = 0;
        var trained = new List<CuratedBatch>();
        using (var channel = TrainerServiceExtensions.CreateChannel(options))
        using (var trainer = new CuratedTrainer(options, channel, null, NullLogger.Instance) { BatchTrained = trained.Add })
        {
            await trainer.RunAsync(CancellationToken.None).WaitAsync(Deadline);
            Assert.Equal(Steps, trainer.State.Step);
        }

        Assert.Equal(Enumerable.Range(1, Steps).Select(i => (long)i), trained.Select(b => b.Sequence));
        Assert.Equal(produced.Order(), trained.SelectMany(b => b.Examples.Select(e => e.Id).Concat(b.FilteredIds)).Order());
        // The first candidate is scored by the initial learner before any batch; every later one a step early.
        Assert.Equal(0, trained[0].Diagnostics.LearnerStaleness);
        Assert.All(trained.Skip(1), b => Assert.Equal(1, b.Diagnostics.LearnerStaleness));
    }

    [Fact]
    public async Task Broker_restart_under_selection_loses_no_batch_and_repeats_none()
    {
        // A broker of its own (the shared one serves other test assemblies at the same time).
        await using var privateBroker = await TestBroker.StartPrivateAsync(portOffset: 13);
        var messaging = privateBroker.Options(TestNames.Unique("brk"));
        await using var host = await SelectionHost.StartAsync(messaging, kestrel: true);
        await using var broker = new BrokerClient(messaging);
        var produced = new List<long>();
        for (var i = 0; i < Steps; i++)
        {
            var scored = fixture.Feeder.Make("brk", i, N);
            await ScoredFeeder.PublishAsync(broker.Publisher, broker.Topology, scored);
            produced.AddRange(scored.Examples.Select(e => e.Id));
        }

        var options = Options(host.Port!.Value, "brk");
        options.EvalEvery = 0;
        var trained = new List<CuratedBatch>();
        Task? restart = null;
        int trainedWhileDown = -1, trainedBeforeRestart = -1, trainedCount = 0;
        using (var channel = TrainerServiceExtensions.CreateChannel(options))
        using (var trainer = new CuratedTrainer(options, channel, null, NullLogger.Instance))
        {
            trainer.BatchTrained = batch =>
            {
                trained.Add(batch);
                Interlocked.Increment(ref trainedCount);
                if (trained.Count == Steps / 3)
                {
                    // Mid-run, while Selection holds unacked super-batches and the session is open:
                    // the trainer goes on only once the broker is down, and the broker comes back
                    // while it is trying.
                    privateBroker.StopAppAsync().GetAwaiter().GetResult();
                    trainedWhileDown = trained.Count;
                    restart = Task.Run(async () =>
                    {
                        // Counted while the broker is certainly down (start_app has not been asked
                        // for yet): what the trainer got done without it.
                        Volatile.Write(ref trainedBeforeRestart, Volatile.Read(ref trainedCount));
                        await privateBroker.StartAppAsync();
                    });
                }
            };
            await trainer.RunAsync(CancellationToken.None).WaitAsync(Deadline);
            Assert.Equal(Steps, trainer.State.Step);
        }
        Assert.NotNull(restart);
        await restart.Within(Deadline, "the broker restart to finish");
        // The run really crossed the outage: the broker went down a third of the way in, the trainer
        // could not finish without it, and it finished after it came back (asserted above). Not
        // "how far it got by the time start_app returned": on a loaded machine the trainer can
        // finish in the second between the broker starting and rabbitmqctl exiting.
        Assert.Equal(Steps / 3, trainedWhileDown);
        Assert.InRange(trainedBeforeRestart, Steps / 3, Steps - 1);

        Assert.Equal(Enumerable.Range(1, Steps).Select(i => (long)i), trained.Select(b => b.Sequence));
        var accounted = trained.SelectMany(b => b.Examples.Select(e => e.Id).Concat(b.FilteredIds)).ToList();
        Assert.Equal(produced.Count, accounted.Count);
        Assert.Equal(produced.Order(), accounted.Order());
    }

    [Fact]
    public async Task Killed_trainer_and_restarted_selection_resume_without_gap_or_repeat()
    {
        var prefix = TestNames.Unique("resume");
        var messaging = fixture.Broker.Options(prefix);
        var port = SelectionHost.FreePort();
        var host = await SelectionHost.StartAsync(messaging, kestrel: true, port: port);
        try
        {
            await using var broker = new BrokerClient(messaging);
            var published = new List<ScoredSuperBatch>();
            for (var i = 0; i < Steps; i++)
            {
                var scored = fixture.Feeder.Make("job", i, N, offset: 5000);
                await ScoredFeeder.PublishAsync(broker.Publisher, broker.Topology, scored);
                published.Add(scored);
            }
            var options = Options(port, "job");
            options.EvalEvery = 0;

            // First life: killed after batch 12; its last checkpoint holds batch 10.
            var first = new List<CuratedBatch>();
            using (var kill = new CancellationTokenSource())
            using (var channel = TrainerServiceExtensions.CreateChannel(options))
            using (var trainer = new CuratedTrainer(options, channel, null, NullLogger.Instance))
            {
                trainer.BatchTrained = b =>
                {
                    first.Add(b);
                    if (b.Sequence == 12)
                    {
                        kill.Cancel();
                    }
                };
                await Assert.ThrowsAnyAsync<OperationCanceledException>(() => trainer.RunAsync(kill.Token).WaitAsync(Deadline));
            }
            Assert.Equal(Enumerable.Range(1, 12).Select(i => (long)i), first.Select(b => b.Sequence));

            // Second life from the checkpoint; the Selection service is restarted under it at batch 18.
            var second = new List<CuratedBatch>();
            var reached18 = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            using (var channel = TrainerServiceExtensions.CreateChannel(options))
            using (var trainer = new CuratedTrainer(options, channel, null, NullLogger.Instance))
            {
                Assert.Equal(10, trainer.State.Cursor);
                trainer.BatchTrained = b =>
                {
                    second.Add(b);
                    if (b.Sequence == 18)
                    {
                        reached18.TrySetResult();
                    }
                };
                var run = trainer.RunAsync(CancellationToken.None);
                await reached18.Task.WaitAsync(Deadline);
                await host.DisposeAsync();
                host = await SelectionHost.StartAsync(messaging, kestrel: true, port: port);
                await run.WaitAsync(Deadline);
                Assert.Equal(Steps, trainer.State.Step);
            }
            Assert.Equal(Enumerable.Range(11, Steps - 10).Select(i => (long)i), second.Select(b => b.Sequence));
            Assert.True(second[0].Replayed && second[1].Replayed, "batches 11 and 12 were recorded before the kill: they are replayed");
            // What the learner finally trained on: 1..10 from the first life, 11..24 from the second.
            var effective = first.Take(10).Concat(second).ToList();
            Assert.Equal(published.Select(p => p.Id).Order(), effective.Select(b => b.SuperBatchId).Order());
            Assert.Equal(first[10].SuperBatchId, second[0].SuperBatchId);
            Assert.Equal(first[11].Examples.Select(e => e.Id), second[1].Examples.Select(e => e.Id));
        }
        finally
        {
            await host.DisposeAsync();
        }
    }

    private static async Task<List<long>> DeadLetteredIdsAsync(BrokerClient broker, int expected)
    {
        var ids = new List<long>();
        await Eventually.WaitUntilAsync(async () =>
        {
            foreach (var (_, body, _) in await broker.GetAllAsync(broker.Topology.DeadLetter))
            {
                ids.AddRange(ScoredSuperBatch.Parser.ParseFrom(body).Examples.Select(e => e.Id));
            }
            return ids.Count >= expected;
        }, TimeSpan.FromSeconds(30), "the poison super-batch in the dead-letter queue");
        return ids;
    }

    public void Dispose()
    {
        if (Directory.Exists(_checkpoints))
        {
            Directory.Delete(_checkpoints, recursive: true);
        }
    }
}
