using System.Diagnostics;
using System.Globalization;
using Grpc.Net.Client;
using JestMesh.Cli.Demo;
using JestMesh.Client;
using JestMesh.Data.WebDataset;
using JestMesh.Learning;
using JestMesh.TestKit;
using JestMesh.Protos.V1;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit.Abstractions;

namespace JestMesh.Cli.Tests.Demo;

/// <summary>
/// <c>jestmesh up</c> as a user runs it: the built CLI as a child process with a temporary --state, a trainer of our
/// own on JestMesh.Client's Curate session, SIGINT to stop; then a second <c>up</c> on the same state resumes the session.
/// </summary>
[Collection(QuickDemoCollection.Name)]
[Trait("Tier", "EndToEnd")]
public sealed class UpTests(ITestOutputHelper output) : IDisposable
{
    /// <summary>Against a hang, not a speed check: a fresh clone trains the reference and Scoring embeds cold first.</summary>
    private static readonly TimeSpan ReadyDeadline = TimeSpan.FromMinutes(30);

    private static readonly TimeSpan StopDeadline = TimeSpan.FromMinutes(2);

    private readonly string _state = Path.Combine(Path.GetTempPath(), "jestmesh-up-test-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_state))
        {
            Directory.Delete(_state, recursive: true);
        }
    }

    [Fact]
    public async Task Up_serves_a_trainer_stops_on_SIGINT_and_resumes_its_sessions_after_a_restart()
    {
        var port = Repo.FreePort();
        var key = "test-key-" + Guid.NewGuid().ToString("N");
        string sessionId;
        await using (var up = await UpProcess.StartAsync(_state, port, key, output))
        {
            Assert.Equal($"ready address=127.0.0.1:{port} api_key={key} jobs=t1,t2", up.Ready);
            var first = await CurateAsync(port, key, "t1", "", 0, 5);
            Assert.Equal([1L, 2, 3, 4, 5], first.Sequences);
            sessionId = first.SessionId;
            await up.StopAsync();
        }

        // A restart on the same state keeps the broker's data, so Selection's batch log resumes the session after its cursor.
        await using (var up = await UpProcess.StartAsync(_state, port, key, output))
        {
            var resumed = await CurateAsync(port, key, "t1", sessionId, 5, 3);
            Assert.Equal([6L, 7, 8], resumed.Sequences);
            Assert.Equal(sessionId, resumed.SessionId);
            await up.StopAsync();
        }
    }

    [Fact]
    public async Task Up_on_a_shard_directory_with_a_pytorch_bundle_serves_every_example_once_and_names_the_skipped()
    {
        // 1,280 colour samples (40 x 30 PNG/JPEG): two super-batches of N = 640, so Ingest's first epoch is exactly the pool.
        var data = Path.Combine(_state + "-data");
        Directory.CreateDirectory(data);
        try
        {
            var pairs = JestMesh.Data.PairDataset.Build(new JestMesh.Data.DataOptions { Seed = 0 });
            var names = ColourShards.Write(data, pairs, shards: 2, perShard: 640);
            var bundle = BundleScript.Make(data, Path.Combine(data + "-bundle"), "--steps", "10", "--channels", "3", "--height", "32", "--width", "32",
                "--mean", "0.5", "0.5", "0.5", "--std", "0.25", "0.25", "0.25");
            // Written after the bundle (the script's own training would stop on them): a sample that does not decode, one without a caption.
            var good = File.ReadAllBytes(Directory.GetFiles(data, "*.tar")[0]);
            WdsWriter.WriteShard(Path.Combine(data, "colour-bad.tar"), [
                new WdsSample("colour-bad.tar", "broken", good[..100], ImageEncoding.Png, "a shirt", null),
                new WdsSample("colour-bad.tar", "silent", ColourPng(), ImageEncoding.Png, "", null)]);
            var expected = names.Select(n => SourceKeys.Id(n.Split('/')[0], n.Split('/')[1])).Order().ToArray();
            var port = Repo.FreePort();
            var key = "test-key-" + Guid.NewGuid().ToString("N");

            await using var up = await UpProcess.StartAsync(_state, port, key, output, "--data", data, "--reference", bundle, "--max-super-batches", "2");
            Assert.Equal($"ready address=127.0.0.1:{port} api_key={key} jobs=default", up.Ready);
            using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{port}");
            var session = new CurateSession(channel, new CurateSettings { Job = "default", ApiKey = key, Policy = Policy.Uniform }, NullLogger.Instance);
            var learner = new Learner(2);
            using (var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(5)))
            {
                await session.RunAsync(learner, deadline.Token);
            }

            // Scored by the bundle; every usable sample selected or filtered exactly once, carrying its stored image and source.
            Assert.Equal(ReferenceBundle.DirectorySha256(bundle), session.ReferenceSha256);
            Assert.Equal(expected, learner.Ids.Order().ToArray());
            Assert.All(learner.Selected, e => Assert.True(e.EncodedImage.Length > 0 && e.Source.Shard.StartsWith("colour-", StringComparison.Ordinal)));
            // The two bad samples: named in Ingest's log with the reason, never published.
            var log = File.ReadAllText(Path.Combine(_state, "logs", "ingest-default.log"));
            Assert.Contains("Skipped WebDataset sample colour-bad.tar/broken: image does not decode", log, StringComparison.Ordinal);
            Assert.Contains("Skipped WebDataset sample colour-bad.tar/silent:", log, StringComparison.Ordinal);
            await up.StopAsync();
        }
        finally
        {
            Directory.Delete(data, recursive: true);
            if (Directory.Exists(data + "-bundle"))
            {
                Directory.Delete(data + "-bundle", recursive: true);
            }
        }
    }

    private static byte[] ColourPng() => ImageCodec.EncodePngGrey(new byte[28 * 28], 28, 28);

    private static async Task<Learner> CurateAsync(int port, string key, string job, string sessionId, long cursor, int batches)
    {
        using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{port}");
        var session = new CurateSession(channel, new CurateSettings { Job = job, ApiKey = key, Policy = Policy.Uniform }, NullLogger.Instance, sessionId, cursor);
        var learner = new Learner(batches) { SessionId = sessionId };
        using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        await session.RunAsync(learner, deadline.Token);
        return learner;
    }

    /// <summary>A learner-free trainer: records what it is given.</summary>
    private sealed class Learner(int wanted) : ICurateLearner
    {
        public List<long> Sequences { get; } = [];

        public string SessionId { get; set; } = "";

        public long Remaining => wanted - Sequences.Count;

        public void SessionOpened(string sessionId) => SessionId = sessionId;

        public LearnerScores Score(Candidate candidate) => throw new InvalidOperationException("uniform needs no learner scores");

        /// <summary>Every id the batches accounted for: selected and filtered.</summary>
        public List<long> Ids { get; } = [];

        public List<Example> Selected { get; } = [];

        public void Train(CuratedBatch batch)
        {
            Assert.Equal(batch.Examples.Count, batch.Examples.Select(e => e.Id).Distinct().Count());
            Sequences.Add(batch.Sequence);
            Ids.AddRange(batch.Examples.Select(e => e.Id).Concat(batch.FilteredIds));
            Selected.AddRange(batch.Examples);
        }
    }

    /// <summary>The built CLI's <c>up</c> as a child process: started, waited for (its ready line), stopped with SIGINT.</summary>
    private sealed class UpProcess : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly List<string> _lines = [];
        private readonly TaskCompletionSource<string> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly string _state;
        private readonly ITestOutputHelper _output;

        private UpProcess(Process process, string state, ITestOutputHelper output)
        {
            _process = process;
            _state = state;
            _output = output;
        }

        public string Ready => _ready.Task.Result;

        public static Task<UpProcess> StartAsync(string state, int port, string key, ITestOutputHelper output) =>
            StartAsync(state, port, key, output, "--job", "t1", "--job", "t2");

        public static async Task<UpProcess> StartAsync(string state, int port, string key, ITestOutputHelper output, params string[] args)
        {
            var repo = Repo.Locate();
            var info = new ProcessStartInfo("dotnet") { WorkingDirectory = repo.Root, UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var arg in new[] { typeof(DemoRunner).Assembly.Location, "up", "--state", state, "--port", port.ToString(CultureInfo.InvariantCulture), "--api-key", key }.Concat(args))
            {
                info.ArgumentList.Add(arg);
            }

            var up = new UpProcess(Process.Start(info)!, state, output);
            up._process.OutputDataReceived += (_, e) => up.OnLine(e.Data, ready: true);
            up._process.ErrorDataReceived += (_, e) => up.OnLine(e.Data, ready: false);
            up._process.BeginOutputReadLine();
            up._process.BeginErrorReadLine();
            var exited = up._process.WaitForExitAsync();
            var first = await Task.WhenAny(up._ready.Task, exited, Task.Delay(ReadyDeadline));
            if (first != up._ready.Task)
            {
                await up.DisposeAsync();
                Assert.Fail($"`up` printed no ready line ({(first == exited ? "it exited" : $"within {ReadyDeadline.TotalMinutes:0} min")}):\n{up.Tail()}");
            }

            return up;
        }

        /// <summary>SIGINT, as Ctrl-C sends it; `up` must exit 0 and leave no broker behind.</summary>
        public async Task StopAsync()
        {
            var brokerPid = int.Parse(File.ReadAllText(Path.Combine(_state, "broker", "rabbit.pid")).Trim(), CultureInfo.InvariantCulture);
            using (var kill = Process.Start("kill", ["-INT", _process.Id.ToString(CultureInfo.InvariantCulture)])!)
            {
                await kill.WaitForExitAsync();
            }

            using var deadline = new CancellationTokenSource(StopDeadline);
            await _process.WaitForExitAsync(deadline.Token);
            Assert.True(_process.ExitCode == 0, $"`up` exited {_process.ExitCode} on SIGINT:\n{Tail()}");
            Assert.False(Alive(brokerPid), $"the broker (pid {brokerPid}) outlived `up`");
            Assert.DoesNotContain(Process.GetProcesses(), p => CommandLine(p).Contains(_state, StringComparison.Ordinal));
            Assert.True(File.Exists(Path.Combine(_state, "broker", "amqp-port")), "`up` dropped its broker's data directory");
        }

        public async ValueTask DisposeAsync()
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }

            lock (_lines)
            {
                foreach (var l in _lines.TakeLast(30))
                {
                    _output.WriteLine(l);
                }
            }

            _process.Dispose();
        }

        private void OnLine(string? line, bool ready)
        {
            if (line is null)
            {
                return;
            }

            lock (_lines)
            {
                _lines.Add(line);
            }

            if (ready && line.StartsWith("ready ", StringComparison.Ordinal))
            {
                _ready.TrySetResult(line);
            }
        }

        private string Tail()
        {
            lock (_lines)
            {
                return string.Join('\n', _lines.TakeLast(40));
            }
        }

        private static bool Alive(int pid)
        {
            try
            {
                using var p = Process.GetProcessById(pid);
                return !p.HasExited;
            }
            catch (ArgumentException)
            {
                return false;
            }
        }

        private static string CommandLine(Process p)
        {
            try
            {
                return File.ReadAllText($"/proc/{p.Id}/cmdline").Replace('\0', ' ');
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return "";
            }
        }
    }
}
