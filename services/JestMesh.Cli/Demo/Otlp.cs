using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Text;

namespace JestMesh.Cli.Demo;

/// <summary>One finished span as the services exported it.</summary>
internal sealed record SpanRecord(string Service, string Name, long StartUnixNano, long EndUnixNano, IReadOnlyDictionary<string, string> Attributes)
{
    public double DurationMs => (EndUnixNano - StartUnixNano) / 1e6;
}

/// <summary>
/// A minimal OTLP/HTTP (protobuf) receiver on loopback: the services export their traces and metrics to
/// it, so the report's stage timings come from the traces without a collector. With a forward address,
/// every request body is also posted unchanged to that OTLP/HTTP collector (same path).
/// Only the fields the report needs are decoded (span name, times, string/int attributes; the sums of
/// histogram data points), straight from the protobuf wire format of the OTLP v1 messages.
/// </summary>
internal sealed class OtlpReceiver : IAsyncDisposable
{
    private readonly HttpListener _listener = new();
    private readonly Uri? _forward;
    private readonly HttpClient? _client;
    private readonly ConcurrentQueue<SpanRecord> _spans = new();
    private readonly ConcurrentDictionary<string, double> _histogramSums = new();
    private readonly Task _loop;
    private readonly CancellationTokenSource _stop = new();
    private int _forwardFailures;

    public OtlpReceiver(int port, Uri? forward)
    {
        Port = port;
        _forward = forward;
        if (forward is not null)
        {
            _client = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        }

        _listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        _listener.Start();
        _loop = Task.Run(LoopAsync);
    }

    public int Port { get; }

    public string Endpoint => $"http://127.0.0.1:{Port}";

    public int ForwardFailures => _forwardFailures;

    /// <summary>Every span received so far, in arrival order.</summary>
    public IReadOnlyList<SpanRecord> Spans => [.. _spans];

    /// <summary>Latest cumulative sum of a histogram metric, per (service, metric name), or null.</summary>
    public double? HistogramSum(string service, string metric) => _histogramSums.TryGetValue(service + "|" + metric, out var v) ? v : null;

    private async Task LoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (HttpListenerException)
            {
                return;
            }

            _ = Task.Run(() => HandleAsync(context));
        }
    }

    private async Task HandleAsync(HttpListenerContext context)
    {
        try
        {
            using var body = new MemoryStream();
            await context.Request.InputStream.CopyToAsync(body);
            var bytes = body.ToArray();
            var path = context.Request.Url?.AbsolutePath ?? "";
            if (path.EndsWith("/v1/traces", StringComparison.Ordinal))
            {
                foreach (var span in DecodeTraces(bytes))
                {
                    _spans.Enqueue(span);
                }
            }
            else if (path.EndsWith("/v1/metrics", StringComparison.Ordinal))
            {
                foreach (var (service, name, sum) in DecodeHistogramSums(bytes))
                {
                    _histogramSums[service + "|" + name] = sum;
                }
            }

            context.Response.StatusCode = 200;
            context.Response.ContentType = "application/x-protobuf";
            context.Response.Close();
            if (_client is not null && _forward is not null)
            {
                await ForwardAsync(path, bytes, context.Request.ContentType);
            }
        }
        catch (Exception) when (!_stop.IsCancellationRequested)
        {
            // A malformed export must not take the demo down; the exporter retries or drops it.
            try
            {
                context.Response.StatusCode = 400;
                context.Response.Close();
            }
            catch (InvalidOperationException)
            {
            }
        }
    }

    private async Task ForwardAsync(string path, byte[] bytes, string? contentType)
    {
        try
        {
            using var content = new ByteArrayContent(bytes);
            content.Headers.TryAddWithoutValidation("Content-Type", contentType ?? "application/x-protobuf");
            using var response = await _client!.PostAsync(new Uri(_forward!, path), content);
            if (!response.IsSuccessStatusCode)
            {
                Interlocked.Increment(ref _forwardFailures);
            }
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            Interlocked.Increment(ref _forwardFailures);
        }
    }

    // ExportTraceServiceRequest{1: ResourceSpans{1: Resource{1: KeyValue}, 2: ScopeSpans{2: Span}}}
    internal static IEnumerable<SpanRecord> DecodeTraces(byte[] request)
    {
        var result = new List<SpanRecord>();
        foreach (var rs in ProtoWire.Messages(request, 1))
        {
            var service = ServiceName(rs);
            foreach (var ss in ProtoWire.Messages(rs, 2))
            {
                foreach (var span in ProtoWire.Messages(ss, 2))
                {
                    result.Add(DecodeSpan(service, span));
                }
            }
        }

        return result;
    }

    // Span{5: name, 7: start fixed64, 8: end fixed64, 9: KeyValue attributes}
    private static SpanRecord DecodeSpan(string service, ReadOnlyMemory<byte> span)
    {
        string name = "";
        long start = 0, end = 0;
        var attributes = new Dictionary<string, string>();
        foreach (var f in ProtoWire.Fields(span))
        {
            switch (f.Number)
            {
                case 5: name = Encoding.UTF8.GetString(f.Bytes.Span); break;
                case 7: start = (long)f.Scalar; break;
                case 8: end = (long)f.Scalar; break;
                case 9:
                    var (k, v) = KeyValue(f.Bytes);
                    if (k is not null && v is not null)
                    {
                        attributes[k] = v;
                    }

                    break;
            }
        }

        return new SpanRecord(service, name, start, end, attributes);
    }

    private static string ServiceName(ReadOnlyMemory<byte> resourceSpans)
    {
        foreach (var resource in ProtoWire.Messages(resourceSpans, 1))
        {
            foreach (var kv in ProtoWire.Messages(resource, 1))
            {
                var (k, v) = KeyValue(kv);
                if (k == "service.name" && v is not null)
                {
                    return v;
                }
            }
        }

        return "";
    }

    // KeyValue{1: key, 2: AnyValue{1: string, 2: bool, 3: int, 4: double}}
    private static (string? Key, string? Value) KeyValue(ReadOnlyMemory<byte> kv)
    {
        string? key = null, value = null;
        foreach (var f in ProtoWire.Fields(kv))
        {
            if (f.Number == 1)
            {
                key = Encoding.UTF8.GetString(f.Bytes.Span);
            }
            else if (f.Number == 2)
            {
                foreach (var a in ProtoWire.Fields(f.Bytes))
                {
                    value = a.Number switch
                    {
                        1 => Encoding.UTF8.GetString(a.Bytes.Span),
                        2 => (a.Scalar != 0).ToString(),
                        3 => ((long)a.Scalar).ToString(System.Globalization.CultureInfo.InvariantCulture),
                        4 => BitConverter.UInt64BitsToDouble(a.Scalar).ToString("R", System.Globalization.CultureInfo.InvariantCulture),
                        _ => value,
                    };
                }
            }
        }

        return (key, value);
    }

    // ExportMetricsServiceRequest{1: ResourceMetrics{1: Resource, 2: ScopeMetrics{2: Metric{1: name, 9: Histogram{1: HistogramDataPoint{5: sum double}}}}}}
    internal static IEnumerable<(string Service, string Name, double Sum)> DecodeHistogramSums(byte[] request)
    {
        var result = new List<(string, string, double)>();
        foreach (var rm in ProtoWire.Messages(request, 1))
        {
            var service = ServiceName(rm);
            foreach (var sm in ProtoWire.Messages(rm, 2))
            {
                foreach (var metric in ProtoWire.Messages(sm, 2))
                {
                    string name = "";
                    double sum = 0;
                    var isHistogram = false;
                    foreach (var f in ProtoWire.Fields(metric))
                    {
                        if (f.Number == 1)
                        {
                            name = Encoding.UTF8.GetString(f.Bytes.Span);
                        }
                        else if (f.Number == 9)
                        {
                            isHistogram = true;
                            foreach (var point in ProtoWire.Messages(f.Bytes, 1))
                            {
                                foreach (var p in ProtoWire.Fields(point))
                                {
                                    if (p.Number == 5)
                                    {
                                        sum += BitConverter.UInt64BitsToDouble(p.Scalar);
                                    }
                                }
                            }
                        }
                    }

                    if (isHistogram)
                    {
                        result.Add((service, name, sum));
                    }
                }
            }
        }

        return result;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Close();
        try
        {
            await _loop;
        }
        catch (ObjectDisposedException)
        {
        }

        _client?.Dispose();
        _stop.Dispose();
    }
}

/// <summary>Just enough of the protobuf wire format to walk messages whose .proto files we do not compile.</summary>
internal static class ProtoWire
{
    /// <summary>One field: varint and fixed values in <see cref="Scalar"/>, length-delimited ones in <see cref="Bytes"/>.</summary>
    internal readonly record struct Field(int Number, int WireType, ulong Scalar, ReadOnlyMemory<byte> Bytes);

    public static IEnumerable<ReadOnlyMemory<byte>> Messages(ReadOnlyMemory<byte> message, int number) =>
        Fields(message).Where(f => f.Number == number && f.WireType == 2).Select(f => f.Bytes);

    public static List<Field> Fields(ReadOnlyMemory<byte> message)
    {
        var fields = new List<Field>();
        var span = message.Span;
        var i = 0;
        while (i < span.Length)
        {
            var key = Varint(span, ref i);
            var number = (int)(key >> 3);
            var wire = (int)(key & 7);
            switch (wire)
            {
                case 0:
                    fields.Add(new Field(number, wire, Varint(span, ref i), default));
                    break;
                case 1:
                    Need(span, i, 8);
                    fields.Add(new Field(number, wire, BinaryPrimitives.ReadUInt64LittleEndian(span[i..]), default));
                    i += 8;
                    break;
                case 2:
                    var length = (int)Varint(span, ref i);
                    Need(span, i, length);
                    fields.Add(new Field(number, wire, 0, message.Slice(i, length)));
                    i += length;
                    break;
                case 5:
                    Need(span, i, 4);
                    fields.Add(new Field(number, wire, BinaryPrimitives.ReadUInt32LittleEndian(span[i..]), default));
                    i += 4;
                    break;
                default:
                    throw new InvalidDataException($"protobuf wire type {wire} (field {number}) at byte {i} is not supported.");
            }
        }

        return fields;
    }

    private static void Need(ReadOnlySpan<byte> span, int at, int count)
    {
        if (count < 0 || at + count > span.Length)
        {
            throw new InvalidDataException($"protobuf field at byte {at} needs {count} bytes, {span.Length - at} left.");
        }
    }

    private static ulong Varint(ReadOnlySpan<byte> span, ref int i)
    {
        ulong value = 0;
        for (var shift = 0; shift < 64; shift += 7)
        {
            Need(span, i, 1);
            var b = span[i++];
            value |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                return value;
            }
        }

        throw new InvalidDataException($"protobuf varint ending at byte {i} is longer than 10 bytes.");
    }
}
