#!/usr/bin/env python3
"""Word error rate and real-time factor of the multilingual recogniser, per language.

Ten phone phrases per language, spoken by espeak-ng's voice of that language (the one voice of
each language a Debian machine has), carried as a call carries them (8 kHz, G.711 μ-law) and
posted one at a time to the Whisper server that scripts/install-speech.sh installs (Whisper
base, CTranslate2, faster-whisper-server), told the language as Switchboard's HTTP engine
tells it. Prints a table: words, word errors, WER, the seconds of recognition per second of
speech (real-time factor, one request at a time), and the server's memory after the run.

    target/speech/whisper/venv/bin/python benches/load/languages.py [target/speech]

Run it with the server's environment's Python: it needs numpy, which that environment has.
"""

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import unicodedata
import urllib.request
import uuid
import wave

import numpy as np

PHRASES = {
    "en": [
        "I would like to check my account balance",
        "Please transfer me to the billing department",
        "My internet has been down since yesterday",
        "Can I change the address on my order",
        "I want to cancel my subscription today",
        "What time does the store open on Sunday",
        "I never received the package you sent",
        "Can you send me a copy of my last invoice",
        "I need to speak with a real person",
        "The payment did not go through this morning",
    ],
    "es": [
        "Quiero hablar con ventas, por favor",
        "Necesito cambiar la dirección de mi pedido",
        "Mi internet no funciona desde ayer",
        "Quiero cancelar mi suscripción hoy",
        "A qué hora abre la tienda el domingo",
        "Nunca recibí el paquete que enviaron",
        "Puede enviarme una copia de mi última factura",
        "Necesito hablar con una persona",
        "El pago no se hizo esta mañana",
        "Quiero saber el saldo de mi cuenta",
    ],
    "fr": [
        "Je voudrais parler au service commercial",
        "Je dois changer l'adresse de ma commande",
        "Mon internet ne marche plus depuis hier",
        "Je veux annuler mon abonnement aujourd'hui",
        "À quelle heure ouvre le magasin dimanche",
        "Je n'ai jamais reçu le colis",
        "Pouvez-vous m'envoyer une copie de ma dernière facture",
        "Je voudrais parler à une vraie personne",
        "Le paiement n'est pas passé ce matin",
        "Je voudrais connaître le solde de mon compte",
    ],
    "de": [
        "Ich möchte mit dem Vertrieb sprechen",
        "Ich muss die Adresse meiner Bestellung ändern",
        "Mein Internet funktioniert seit gestern nicht",
        "Ich möchte mein Abonnement heute kündigen",
        "Wann öffnet das Geschäft am Sonntag",
        "Ich habe das Paket nie bekommen",
        "Können Sie mir eine Kopie meiner letzten Rechnung schicken",
        "Ich möchte mit einem Menschen sprechen",
        "Die Zahlung ist heute Morgen nicht durchgegangen",
        "Ich möchte meinen Kontostand wissen",
    ],
    "pt": [
        "Quero falar com o setor de vendas",
        "Preciso mudar o endereço do meu pedido",
        "Minha internet não funciona desde ontem",
        "Quero cancelar minha assinatura hoje",
        "A que horas a loja abre no domingo",
        "Eu nunca recebi o pacote",
        "Pode me enviar uma cópia da minha última fatura",
        "Preciso falar com uma pessoa",
        "O pagamento não foi aprovado hoje de manhã",
        "Quero saber o saldo da minha conta",
    ],
    "it": [
        "Vorrei parlare con l'ufficio vendite",
        "Devo cambiare l'indirizzo del mio ordine",
        "Internet non funziona da ieri",
        "Voglio annullare il mio abbonamento oggi",
        "A che ora apre il negozio la domenica",
        "Non ho mai ricevuto il pacco",
        "Può mandarmi una copia della mia ultima fattura",
        "Vorrei parlare con una persona",
        "Il pagamento non è andato a buon fine stamattina",
        "Vorrei sapere il saldo del mio conto",
    ],
}


def words(text):
    """Lower-case words without punctuation, accents kept (they are spelling in these
    languages); an apostrophe splits (l'ufficio → l ufficio), as the recogniser may."""
    text = unicodedata.normalize("NFC", text.lower()).replace("'", " ").replace("’", " ")
    return [w for w in re.split(r"[^\w]+", text) if w]


def word_errors(said, heard):
    row = list(range(len(heard) + 1))
    for i, r in enumerate(said):
        prev, row[0] = row[0], i + 1
        for j, h in enumerate(heard):
            cur = row[j + 1]
            row[j + 1] = min(prev + (r != h), row[j] + 1, cur + 1)
            prev = cur
    return row[len(heard)]


def mulaw_round_trip(x):
    """G.711 μ-law encoding and decoding of 16-bit samples (ITU-T G.711, the segment table)."""
    bias, clip = 0x84, 32635
    s = np.clip(x.astype(np.int32), -clip, clip)
    sign = (s < 0).astype(np.int32)
    mag = np.abs(s) + bias
    exp = np.floor(np.log2(mag)).astype(np.int32) - 7
    exp = np.clip(exp, 0, 7)
    mant = (mag >> (exp + 3)) & 0x0F
    # decode
    out = ((mant << 3) + bias) << exp
    out = out - bias
    return np.where(sign == 1, -out, out).astype(np.int16)


def to_8k(samples, rate):
    """Low-passed below 3.4 kHz and resampled to 8 kHz (windowed sinc, then interpolation)."""
    x = samples.astype(np.float64)
    cutoff = 3400.0 / rate
    n = np.arange(-64, 65)
    taps = np.sinc(2 * cutoff * n) * np.hamming(len(n))
    taps /= taps.sum()
    x = np.convolve(x, taps, mode="same")
    t = np.arange(0, len(x) / rate, 1 / 8000)
    return np.interp(t, np.arange(len(x)) / rate, x)


def speak(language, text):
    wav = subprocess.run(
        ["espeak-ng", "--stdout", "-s", "150", "-v", language, text],
        check=True,
        capture_output=True,
    ).stdout
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        f.write(wav)
        f.flush()
        with wave.open(f.name) as w:
            rate = w.getframerate()
            samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    return mulaw_round_trip(to_8k(samples, rate))


def wav_bytes(samples):
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        with wave.open(f.name, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(samples.tobytes())
        return open(f.name, "rb").read()


def transcribe(url, samples, language):
    boundary = uuid.uuid4().hex
    fields = [("language", language), ("response_format", "json")]
    body = b""
    for name, value in fields:
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    body += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="u.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode() + wav_bytes(samples) + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    with urllib.request.urlopen(request, timeout=120) as r:
        return json.load(r)["text"]


def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main():
    speech = sys.argv[1] if len(sys.argv) > 1 else "target/speech"
    whisper = os.path.join(speech, "whisper")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    server = subprocess.Popen(
        [os.path.join(whisper, "venv/bin/python"), "-m", "faster_whisper_server",
         "--host", "127.0.0.1", "--port", str(port), os.path.join(whisper, "model")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1/audio/transcriptions"
    try:
        deadline = time.time() + 120
        while True:
            try:
                transcribe(url, np.zeros(8000, dtype=np.int16), "en")
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    sys.exit("the Whisper server did not start")
                time.sleep(0.25)
        loaded = rss_mb(server.pid)
        print(f"Whisper base (CTranslate2, faster-whisper-server), loaded: {loaded:.0f} MB RSS")
        print("| language | phrases | words | word errors | WER | real-time factor |")
        print("|---|---|---|---|---|---|")
        worst = []
        for language, phrases in PHRASES.items():
            total = errors = 0
            busy = audio = 0.0
            for phrase in phrases:
                samples = speak(language, phrase)
                started = time.time()
                heard = transcribe(url, samples, language)
                busy += time.time() - started
                audio += len(samples) / 8000
                said = words(phrase)
                e = word_errors(said, words(heard))
                total += len(said)
                errors += e
                if e:
                    worst.append((language, e, phrase, heard.strip()))
            print(f"| {language} | {len(phrases)} | {total} | {errors} | {100 * errors / total:.1f} % | {busy / audio:.2f} |")
        print(f"server after the run: {rss_mb(server.pid):.0f} MB RSS")
        print()
        for language, e, phrase, heard in worst:
            print(f"{language} ({e}): {phrase!r} -> {heard!r}")
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
