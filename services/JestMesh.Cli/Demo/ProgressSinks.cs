using Spectre.Console;

namespace JestMesh.Cli.Demo;

/// <summary>Where a run's progress goes: a Spectre progress task, or plain lines.</summary>
internal interface IProgressSink
{
    void Start();

    void Report(int value, string description);

    void Stop();
}

/// <summary>Progress bars (one per run) and the pipeline-health line; plain lines when the console is not interactive.</summary>
internal static class LiveProgress
{
    public static async Task RunAsync(DemoPlan plan, Func<IReadOnlyDictionary<RunPlan, IProgressSink>, IProgressSink, Task> body)
    {
        if (!AnsiConsole.Profile.Capabilities.Interactive)
        {
            var sinks = plan.Runs.ToDictionary(r => r, r => (IProgressSink)new LineSink(r.Name, plan.Steps));
            await body(sinks, new LineSink("pipeline", 0));
            return;
        }

        await AnsiConsole.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .StartAsync(async ctx =>
            {
                var sinks = plan.Runs.ToDictionary(r => r, r => (IProgressSink)new TaskSink(ctx.AddTask(Markup.Escape(r.Name), autoStart: false, maxValue: plan.Steps), r.Name));
                var health = ctx.AddTask("pipeline", autoStart: true, maxValue: 1);
                health.IsIndeterminate = true;
                await body(sinks, new TaskSink(health, "pipeline"));
                health.Value = 1;
                health.StopTask();
            });
    }
}

internal sealed class TaskSink(ProgressTask task, string name) : IProgressSink
{
    public void Start() => task.StartTask();

    public void Report(int value, string description)
    {
        task.Value = value;
        task.Description = Markup.Escape(description.Length == 0 ? name : description);
    }

    public void Stop() => task.StopTask();
}

internal sealed class LineSink(string name, int max) : IProgressSink
{
    private long _lastPrint;

    public void Start() => Console.WriteLine($"{DateTime.Now:HH:mm:ss} {name}: started");

    public void Report(int value, string description)
    {
        // Every 10 s at most: CI logs stay readable.
        var now = Environment.TickCount64;
        if (now - _lastPrint >= 10_000)
        {
            _lastPrint = now;
            Console.WriteLine(max > 0 ? $"{DateTime.Now:HH:mm:ss} {description} {value}/{max}" : $"{DateTime.Now:HH:mm:ss} {name}: {description}");
        }
    }

    public void Stop() => Console.WriteLine($"{DateTime.Now:HH:mm:ss} {name}: done");
}
