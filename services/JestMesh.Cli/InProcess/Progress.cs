using Spectre.Console;

namespace JestMesh.Cli.InProcess;

/// <summary>A progress bar on a terminal; plain lines when output is redirected (logs, nohup).</summary>
internal static class Progress
{
    public static T Run<T>(string title, int total, Func<Action<int, string?>, T> work)
    {
        if (Console.IsOutputRedirected || !AnsiConsole.Profile.Capabilities.Interactive)
        {
            var lastPrinted = -1;
            return work((done, note) =>
            {
                if (note is not null || done == total || done / Math.Max(1, total / 20) != lastPrinted)
                {
                    lastPrinted = done / Math.Max(1, total / 20);
                    Console.WriteLine($"[{DateTime.UtcNow:HH:mm:ss}] {title}: {done}/{total}{(note is null ? "" : "  " + note)}");
                }
            });
        }

        T result = default!;
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(Markup.Escape(title), maxValue: total);
                result = work((done, note) =>
                {
                    task.Value = done;
                    if (note is not null)
                    {
                        task.Description = Markup.Escape($"{title} {note}");
                    }
                });
            });
        return result;
    }
}
