"""espeak-ng synthesis server, run as ``python -S _espeak_child.py LIB DATA`` by ``synth.engines.espeak``.

espeak-ng keeps synthesis state in C statics that no API resets (the pitch-flutter phase, the gain control,
the echo buffer), so the same request gives slightly different audio depending on what was said before.
This server initialises the library once and never synthesizes itself: each request is served by a
``fork()`` of it, which starts from the same memory every time, so the output depends only on the request.

Protocol on stdin/stdout, little-endian: the server first writes ``int32 sample_rate``; each request is
``int32 length`` + UTF-8 ``seed\\tvoice\\trate\\tpitch\\trange\\ttext``; each reply is ``int32 status, int32 nbytes``
followed by that many bytes of int16 PCM (status 0 is success, otherwise espeak's error code).
Standard library only (no numpy), so it starts in a few milliseconds.
"""
import ctypes
import os
import struct
import sys

AUDIO_OUTPUT_SYNCHRONOUS = 2
CHARS_UTF8 = 1
RATE, PITCH, RANGE = 1, 3, 4


def serve(lib_path: str, data_path: str) -> None:
    lib = ctypes.CDLL(lib_path)
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                 ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    sample_rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), 0)
    chunks = []

    @ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
    def on_audio(wav, n, events):
        if n > 0:
            chunks.append(ctypes.string_at(wav, 2 * n))
        return 0

    lib.espeak_SetSynthCallback(on_audio)
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    libc = ctypes.CDLL(None)
    lib.espeak_SetVoiceByName(b"en-us")  # loads the English dictionary once, before any fork
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    stdout.write(struct.pack("<i", sample_rate))
    stdout.flush()
    while True:
        head = stdin.read(4)
        if len(head) < 4:
            return
        seed, voice, rate, pitch, prange, text = stdin.read(struct.unpack("<i", head)[0]).decode().split("\t", 5)
        stdout.flush()
        pid = os.fork()
        if pid == 0:
            # Breath noise (whisper and breathy variants) comes from espeak's generator and libc rand().
            lib.espeak_ng_SetRandSeed(int(seed))
            libc.srand(int(seed))
            status = lib.espeak_SetVoiceByName(voice.encode())
            if status == 0:
                for param, value in ((RATE, rate), (PITCH, pitch), (RANGE, prange)):
                    lib.espeak_SetParameter(param, int(value), 0)
                data = text.encode() + b"\0"
                status = lib.espeak_Synth(data, len(data), 0, 0, 0, CHARS_UTF8, None, None)
                status = status or lib.espeak_Synchronize()
            pcm = b"".join(chunks) if status == 0 else b""
            stdout.write(struct.pack("<ii", status, len(pcm)) + pcm)
            stdout.flush()
            os._exit(0)
        if os.waitpid(pid, 0)[1] != 0:  # the child died before replying
            stdout.write(struct.pack("<ii", -1, 0))
            stdout.flush()


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2])
