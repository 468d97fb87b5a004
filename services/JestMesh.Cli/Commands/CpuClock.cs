using System.Globalization;

namespace JestMesh.Cli.Commands;

/// <summary>
/// CPU time from the kernel's public accounting: a process's user + system time from /proc/PID/stat, the machine's
/// busy time from /proc/stat. Both count in USER_HZ ticks (100 a second on Linux, whatever the kernel's HZ).
/// </summary>
internal static class CpuClock
{
    private const double MsPerTick = 10;

    /// <summary>User + system CPU milliseconds <paramref name="pid"/> has used (threads that ended included); null when it is gone.</summary>
    public static double? ProcessMs(int pid)
    {
        string text;
        try
        {
            text = File.ReadAllText($"/proc/{pid}/stat");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
        // The command name (field 2) is in parentheses and may hold spaces: count fields after its closing one.
        // Field 3 (state) is then index 0, utime (field 14) index 11, stime (field 15) index 12.
        var rest = text[(text.LastIndexOf(')') + 2)..].Split(' ');
        return (long.Parse(rest[11], CultureInfo.InvariantCulture) + long.Parse(rest[12], CultureInfo.InvariantCulture)) * MsPerTick;
    }

    /// <summary>Each live thread of <paramref name="pid"/>: its id, name (/proc/PID/task/TID/comm, at most 15 characters) and CPU milliseconds.</summary>
    public static List<(int Tid, string Name, double Ms)> ThreadsMs(int pid)
    {
        var threads = new List<(int, string, double)>();
        string[] tasks;
        try
        {
            tasks = Directory.GetDirectories($"/proc/{pid}/task");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return threads;
        }
        foreach (var task in tasks)
        {
            try
            {
                var text = File.ReadAllText(Path.Combine(task, "stat"));
                var open = text.IndexOf('(', StringComparison.Ordinal);
                var close = text.LastIndexOf(')');
                var rest = text[(close + 2)..].Split(' ');
                threads.Add((int.Parse(text[..(open - 1)], CultureInfo.InvariantCulture), text[(open + 1)..close],
                    (long.Parse(rest[11], CultureInfo.InvariantCulture) + long.Parse(rest[12], CultureInfo.InvariantCulture)) * MsPerTick));
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // The thread ended meanwhile.
            }
        }
        return threads;
    }

    /// <summary>The machine's busy and total CPU milliseconds summed over its cores (the "cpu" line of /proc/stat; idle and iowait are not busy).</summary>
    public static (double BusyMs, double TotalMs)? MachineMs()
    {
        if (!File.Exists("/proc/stat"))
        {
            return null;
        }
        var fields = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1)
            .Select(f => long.Parse(f, CultureInfo.InvariantCulture)).ToArray();
        // user nice system idle iowait irq softirq steal (guest time is already inside user).
        var total = fields.Take(8).Sum();
        var idle = fields[3] + fields[4];
        return ((total - idle) * MsPerTick, total * MsPerTick);
    }

    /// <summary>The first field of /proc/loadavg (the 1-minute load average), "" where there is none.</summary>
    public static string LoadAverage() => File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "";

    /// <summary>
    /// The process ids of the broker started by <c>scripts/broker.sh start DIR</c>: its pid file DIR/rabbit.pid (the
    /// Erlang VM, beam.smp), or one per node DIR/node-PORT/rabbit.pid for a cluster. Empty when there is none.
    /// </summary>
    public static IReadOnlyList<int> BrokerPids(string directory)
    {
        var files = new List<string>();
        if (File.Exists(Path.Combine(directory, "rabbit.pid")))
        {
            files.Add(Path.Combine(directory, "rabbit.pid"));
        }
        if (Directory.Exists(directory))
        {
            files.AddRange(Directory.GetDirectories(directory, "node-*").Select(d => Path.Combine(d, "rabbit.pid")).Where(File.Exists));
        }
        return files.Select(f => int.TryParse(File.ReadAllText(f).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) ? pid : 0)
            .Where(pid => pid > 0 && ProcessMs(pid) is not null).ToList();
    }
}
