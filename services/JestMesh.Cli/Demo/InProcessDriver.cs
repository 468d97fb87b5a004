using System.Globalization;

namespace JestMesh.Cli.Demo;

/// <summary>
/// Drives one learner run in-process (<c>./jestmesh train --inproc</c> as a child process, no services); progress
/// and results come from the metrics.json the loop rewrites after every evaluation, not from its console output.
/// </summary>
internal sealed class InProcessDriver(Repo repo, DemoPlan plan, string outDirectory, string reference)
{
    // The CLI runs as `dotnet jestmesh.dll`: start sub-commands the same way.
    public static string SelfHost => Environment.ProcessPath ?? "dotnet";

    public static string[] SelfArguments =>
        Path.GetFileNameWithoutExtension(Environment.ProcessPath ?? "") == "dotnet" ? [typeof(InProcessDriver).Assembly.Location] : [];

    public async Task<RunData> RunAsync(RunPlan run, IProgressSink sink, CancellationToken cancellationToken)
    {
        var dir = Path.Combine(outDirectory, "runs", run.Slug);
        var metrics = Path.Combine(dir, "metrics.json");
        if (File.Exists(metrics))
        {
            File.Delete(metrics);
        }

        sink.Start();
        string[] args = [.. SelfArguments, "train", "--inproc", "--policy", run.Policy, "--filter-ratio", run.FilterRatio.ToString(CultureInfo.InvariantCulture),
            "--chunks", (run.Independent ? 1 : plan.Chunks).ToString(CultureInfo.InvariantCulture), "--batch-size", plan.BatchSize.ToString(CultureInfo.InvariantCulture),
            "--steps", plan.Steps.ToString(CultureInfo.InvariantCulture), "--seed", plan.Seed.ToString(CultureInfo.InvariantCulture),
            "--gain", plan.Gain.ToString(CultureInfo.InvariantCulture), "--eval-every", plan.EvalEvery.ToString(CultureInfo.InvariantCulture),
            "--reference", reference, "--out", dir];
        if (run.Independent)
        {
            args = [.. args, "--independent"];
        }

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var poll = Task.Run(
            async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    sink.Report(RunResults.InProcessSteps(metrics), run.Name);
                    await Task.Delay(1000, stop.Token).ConfigureAwait(false);
                }
            }, stop.Token);
        int code;
        try
        {
            code = await Repo.RunAsync(SelfHost, args, repo.Root, cancellationToken, onLine: _ => { });
        }
        finally
        {
            await stop.CancelAsync();
            try
            {
                await poll;
            }
            catch (OperationCanceledException)
            {
                // The poll ends with the run.
            }
        }

        if (code != 0)
        {
            throw new InvalidOperationException($"`./jestmesh {string.Join(' ', args.Skip(SelfArguments.Length))}` failed (exit {code}).");
        }

        var data = RunResults.FromInProcess(run, plan, metrics);
        sink.Report(plan.Steps, run.Name);
        sink.Stop();
        return data;
    }
}
