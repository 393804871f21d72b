/* text_clean.c - ftfy.fix_text, whitespace_clean and str.lower() as CLIP's
 * tokenizer applies them (see text_clean.h). Unicode data comes from
 * utf8proc (Unicode 15.0); the few places where the reference (Python 3.11's
 * unicodedata at Unicode 14.0, the regex module at Unicode 16.0) differs
 * from it are listed in small tables below. */
#include "text/text_clean.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ---- code point vectors ------------------------------------------------ */

static sdc_status u32_reserve(sdc_u32vec *b, size_t need) {
    if (need <= b->cap) return SDC_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    uint32_t *v = realloc(b->v, cap * sizeof *v);
    if (!v)
        return sdc_fail(SDC_ERR_OOM, "text_clean: out of memory for %zu code "
                        "points", cap);
    b->v = v;
    b->cap = cap;
    return SDC_OK;
}

sdc_status sdc_u32_push(sdc_u32vec *b, uint32_t cp) {
    if (b->n == b->cap) SDC_TRY(u32_reserve(b, b->n + 1));
    b->v[b->n++] = cp;
    return SDC_OK;
}

sdc_status sdc_u32_append(sdc_u32vec *b, const uint32_t *cps, size_t n) {
    SDC_TRY(u32_reserve(b, b->n + n));
    if (n) memcpy(b->v + b->n, cps, n * sizeof *cps);
    b->n += n;
    return SDC_OK;
}

void sdc_u32_free(sdc_u32vec *b) {
    free(b->v);
    b->v = NULL;
    b->n = b->cap = 0;
}

static void u32_swap(sdc_u32vec *a, sdc_u32vec *b) {
    sdc_u32vec t = *a;
    *a = *b;
    *b = t;
}

static bool u32_equal(const sdc_u32vec *a, const sdc_u32vec *b) {
    return a->n == b->n && (a->n == 0 || !memcmp(a->v, b->v, a->n * sizeof *a->v));
}

/* ---- UTF-8 ------------------------------------------------------------- */

sdc_status sdc_text_from_utf8(const char *s, size_t len, sdc_u32vec *out) {
    const unsigned char *p = (const unsigned char *)s;
    SDC_TRY(u32_reserve(out, out->n + len));
    size_t i = 0;
    while (i < len) {
        uint32_t c = p[i];
        int extra;
        uint32_t min;
        if (c < 0x80) { extra = 0; min = 0; }
        else if ((c & 0xE0) == 0xC0) { extra = 1; min = 0x80; c &= 0x1F; }
        else if ((c & 0xF0) == 0xE0) { extra = 2; min = 0x800; c &= 0x0F; }
        else if ((c & 0xF8) == 0xF0) { extra = 3; min = 0x10000; c &= 0x07; }
        else goto bad;
        for (int k = 1; k <= extra; k++) {
            if (i + (size_t)k >= len || (p[i + k] & 0xC0) != 0x80) goto bad;
            c = (c << 6) | (p[i + k] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) goto bad;
        out->v[out->n++] = c;
        i += (size_t)extra + 1;
        continue;
    bad:
        return sdc_fail(SDC_ERR_ARG, "tokenizer: prompt is not valid UTF-8 "
                        "(byte offset %zu, byte 0x%02x)", i, p[i]);
    }
    return SDC_OK;
}

int sdc_text_utf8_char(uint32_t cp, char *buf) {
    return (int)utf8proc_encode_char((utf8proc_int32_t)cp, (utf8proc_uint8_t *)buf);
}

/* ---- HTML entities (ftfy.chardata.HTML_ENTITIES) ------------------------ */

/* Every html5 entity name that ends in ';' and fits ftfy's pattern
 * &#?[0-9A-Za-z]{1,24}; packed as NAME '=' LEN VALUE, or NAME '+' LEN VALUE
 * ULEN UVALUE when ftfy also accepts the all-caps NAME with value UVALUE.
 * LEN is 'A' + the byte length of the UTF-8 value. Generated from Python's
 * html.entities.html5 by tools/fixtures_tokenizer.py --c-tables. */
static const char k_entities[] =
/* BEGIN GENERATED ENTITIES */
    "AElig=CÆAMP=B&Aacute=CÁAbreve=CĂAcirc=CÂAcy=CАAfr=E𝔄Agrave=CÀAlpha=CΑAmacr=CĀAnd=D⩓Aogon=CĄAopf=E𝔸"
    "ApplyFunction=D⁡Aring=CÅAscr=E𝒜Assign=D≔Atilde=CÃAuml=CÄBackslash=D∖Barv=D⫧Barwed=D⌆Bcy=CБBecause=D∵"
    "Bernoullis=DℬBeta=CΒBfr=E𝔅Bopf=E𝔹Breve=C˘Bscr=DℬBumpeq=D≎CHcy=CЧCOPY=C©Cacute=CĆCap=D⋒"
    "CapitalDifferentialD=DⅅCayleys=DℭCcaron=CČCcedil=CÇCcirc=CĈCconint=D∰Cdot=CĊCedilla=C¸CenterDot=C·Cfr=Dℭ"
    "Chi=CΧCircleDot=D⊙CircleMinus=D⊖CirclePlus=D⊕CircleTimes=D⊗ClockwiseContourIntegral=D∲"
    "CloseCurlyDoubleQuote=D”CloseCurlyQuote=D’Colon=D∷Colone=D⩴Congruent=D≡Conint=D∯ContourIntegral=D∮Copf=Dℂ"
    "Coproduct=D∐Cross=D⨯Cscr=E𝒞Cup=D⋓CupCap=D≍DD=DⅅDDotrahd=D⤑DJcy=CЂDScy=CЅDZcy=CЏDagger=D‡Darr=D↡Dashv=D⫤"
    "Dcaron=CĎDcy=CДDel=D∇Delta=CΔDfr=E𝔇DiacriticalAcute=C´DiacriticalDot=C˙DiacriticalDoubleAcute=C˝"
    "DiacriticalGrave=B`DiacriticalTilde=C˜Diamond=D⋄DifferentialD=DⅆDopf=E𝔻Dot=C¨DotDot=D⃜DotEqual=D≐"
    "DoubleContourIntegral=D∯DoubleDot=C¨DoubleDownArrow=D⇓DoubleLeftArrow=D⇐DoubleLeftRightArrow=D⇔"
    "DoubleLeftTee=D⫤DoubleLongLeftArrow=D⟸DoubleLongLeftRightArrow=D⟺DoubleLongRightArrow=D⟹DoubleRightArrow=D⇒"
    "DoubleRightTee=D⊨DoubleUpArrow=D⇑DoubleUpDownArrow=D⇕DoubleVerticalBar=D∥DownArrow=D↓DownArrowBar=D⤓"
    "DownArrowUpArrow=D⇵DownBreve=C̑DownLeftRightVector=D⥐DownLeftTeeVector=D⥞DownLeftVector=D↽"
    "DownLeftVectorBar=D⥖DownRightTeeVector=D⥟DownRightVector=D⇁DownRightVectorBar=D⥗DownTee=D⊤DownTeeArrow=D↧"
    "Downarrow=D⇓Dscr=E𝒟Dstrok=CĐENG=CŊETH=CÐEacute=CÉEcaron=CĚEcirc=CÊEcy=CЭEdot=CĖEfr=E𝔈Egrave=CÈElement=D∈"
    "Emacr=CĒEmptySmallSquare=D◻EmptyVerySmallSquare=D▫Eogon=CĘEopf=E𝔼Epsilon=CΕEqual=D⩵EqualTilde=D≂"
    "Equilibrium=D⇌Escr=DℰEsim=D⩳Eta=CΗEuml=CËExists=D∃ExponentialE=DⅇFcy=CФFfr=E𝔉FilledSmallSquare=D◼"
    "FilledVerySmallSquare=D▪Fopf=E𝔽ForAll=D∀Fouriertrf=DℱFscr=DℱGJcy=CЃGT=B>Gamma=CΓGammad=CϜGbreve=CĞGcedil=CĢ"
    "Gcirc=CĜGcy=CГGdot=CĠGfr=E𝔊Gg=D⋙Gopf=E𝔾GreaterEqual=D≥GreaterEqualLess=D⋛GreaterFullEqual=D≧"
    "GreaterGreater=D⪢GreaterLess=D≷GreaterSlantEqual=D⩾GreaterTilde=D≳Gscr=E𝒢Gt=D≫HARDcy=CЪHacek=CˇHat=B^"
    "Hcirc=CĤHfr=DℌHilbertSpace=DℋHopf=DℍHorizontalLine=D─Hscr=DℋHstrok=CĦHumpDownHump=D≎HumpEqual=D≏IEcy=CЕ"
    "IJlig=CĲIOcy=CЁIacute=CÍIcirc=CÎIcy=CИIdot=CİIfr=DℑIgrave=CÌIm=DℑImacr=CĪImaginaryI=DⅈImplies=D⇒Int=D∬"
    "Integral=D∫Intersection=D⋂InvisibleComma=D⁣InvisibleTimes=D⁢Iogon=CĮIopf=E𝕀Iota=CΙIscr=DℐItilde=CĨIukcy=CІ"
    "Iuml=CÏJcirc=CĴJcy=CЙJfr=E𝔍Jopf=E𝕁Jscr=E𝒥Jsercy=CЈJukcy=CЄKHcy=CХKJcy=CЌKappa=CΚKcedil=CĶKcy=CКKfr=E𝔎Kopf=E𝕂"
    "Kscr=E𝒦LJcy=CЉLT=B<Lacute=CĹLambda=CΛLang=D⟪Laplacetrf=DℒLarr=D↞Lcaron=CĽLcedil=CĻLcy=CЛLeftAngleBracket=D⟨"
    "LeftArrow=D←LeftArrowBar=D⇤LeftArrowRightArrow=D⇆LeftCeiling=D⌈LeftDoubleBracket=D⟦LeftDownTeeVector=D⥡"
    "LeftDownVector=D⇃LeftDownVectorBar=D⥙LeftFloor=D⌊LeftRightArrow=D↔LeftRightVector=D⥎LeftTee=D⊣"
    "LeftTeeArrow=D↤LeftTeeVector=D⥚LeftTriangle=D⊲LeftTriangleBar=D⧏LeftTriangleEqual=D⊴LeftUpDownVector=D⥑"
    "LeftUpTeeVector=D⥠LeftUpVector=D↿LeftUpVectorBar=D⥘LeftVector=D↼LeftVectorBar=D⥒Leftarrow=D⇐"
    "Leftrightarrow=D⇔LessEqualGreater=D⋚LessFullEqual=D≦LessGreater=D≶LessLess=D⪡LessSlantEqual=D⩽LessTilde=D≲"
    "Lfr=E𝔏Ll=D⋘Lleftarrow=D⇚Lmidot=CĿLongLeftArrow=D⟵LongLeftRightArrow=D⟷LongRightArrow=D⟶Longleftarrow=D⟸"
    "Longleftrightarrow=D⟺Longrightarrow=D⟹Lopf=E𝕃LowerLeftArrow=D↙LowerRightArrow=D↘Lscr=DℒLsh=D↰Lstrok=CŁLt=D≪"
    "Map=D⤅Mcy=CМMediumSpace=D Mellintrf=DℳMfr=E𝔐MinusPlus=D∓Mopf=E𝕄Mscr=DℳMu=CΜNJcy=CЊNacute=CŃNcaron=CŇ"
    "Ncedil=CŅNcy=CНNegativeMediumSpace=D​NegativeThickSpace=D​NegativeThinSpace=D​NegativeVeryThinSpace=D​"
    "NestedGreaterGreater=D≫NestedLessLess=D≪NewLine=B\012Nfr=E𝔑NoBreak=D⁠NonBreakingSpace=C Nopf=DℕNot=D⫬"
    "NotCongruent=D≢NotCupCap=D≭NotDoubleVerticalBar=D∦NotElement=D∉NotEqual=D≠NotEqualTilde=F≂̸NotExists=D∄"
    "NotGreater=D≯NotGreaterEqual=D≱NotGreaterFullEqual=F≧̸NotGreaterGreater=F≫̸NotGreaterLess=D≹"
    "NotGreaterSlantEqual=F⩾̸NotGreaterTilde=D≵NotHumpDownHump=F≎̸NotHumpEqual=F≏̸NotLeftTriangle=D⋪"
    "NotLeftTriangleBar=F⧏̸NotLeftTriangleEqual=D⋬NotLess=D≮NotLessEqual=D≰NotLessGreater=D≸NotLessLess=F≪̸"
    "NotLessSlantEqual=F⩽̸NotLessTilde=D≴NotNestedGreaterGreater=F⪢̸NotNestedLessLess=F⪡̸NotPrecedes=D⊀"
    "NotPrecedesEqual=F⪯̸NotPrecedesSlantEqual=D⋠NotReverseElement=D∌NotRightTriangle=D⋫NotRightTriangleBar=F⧐̸"
    "NotRightTriangleEqual=D⋭NotSquareSubset=F⊏̸NotSquareSubsetEqual=D⋢NotSquareSuperset=F⊐̸"
    "NotSquareSupersetEqual=D⋣NotSubset=G⊂⃒NotSubsetEqual=D⊈NotSucceeds=D⊁NotSucceedsEqual=F⪰̸"
    "NotSucceedsSlantEqual=D⋡NotSucceedsTilde=F≿̸NotSuperset=G⊃⃒NotSupersetEqual=D⊉NotTilde=D≁NotTildeEqual=D≄"
    "NotTildeFullEqual=D≇NotTildeTilde=D≉NotVerticalBar=D∤Nscr=E𝒩Ntilde=CÑNu=CΝOElig=CŒOacute=CÓOcirc=CÔOcy=CО"
    "Odblac=CŐOfr=E𝔒Ograve=CÒOmacr=CŌOmega=CΩOmicron=CΟOopf=E𝕆OpenCurlyDoubleQuote=D“OpenCurlyQuote=D‘Or=D⩔"
    "Oscr=E𝒪Oslash=CØOtilde=CÕOtimes=D⨷Ouml=CÖOverBar=D‾OverBrace=D⏞OverBracket=D⎴OverParenthesis=D⏜PartialD=D∂"
    "Pcy=CПPfr=E𝔓Phi=CΦPi=CΠPlusMinus=C±Poincareplane=DℌPopf=DℙPr=D⪻Precedes=D≺PrecedesEqual=D⪯"
    "PrecedesSlantEqual=D≼PrecedesTilde=D≾Prime=D″Product=D∏Proportion=D∷Proportional=D∝Pscr=E𝒫Psi=CΨQUOT=B\042"
    "Qfr=E𝔔Qopf=DℚQscr=E𝒬RBarr=D⤐REG=C®Racute=CŔRang=D⟫Rarr=D↠Rarrtl=D⤖Rcaron=CŘRcedil=CŖRcy=CРRe=Dℜ"
    "ReverseElement=D∋ReverseEquilibrium=D⇋ReverseUpEquilibrium=D⥯Rfr=DℜRho=CΡRightAngleBracket=D⟩RightArrow=D→"
    "RightArrowBar=D⇥RightArrowLeftArrow=D⇄RightCeiling=D⌉RightDoubleBracket=D⟧RightDownTeeVector=D⥝"
    "RightDownVector=D⇂RightDownVectorBar=D⥕RightFloor=D⌋RightTee=D⊢RightTeeArrow=D↦RightTeeVector=D⥛"
    "RightTriangle=D⊳RightTriangleBar=D⧐RightTriangleEqual=D⊵RightUpDownVector=D⥏RightUpTeeVector=D⥜"
    "RightUpVector=D↾RightUpVectorBar=D⥔RightVector=D⇀RightVectorBar=D⥓Rightarrow=D⇒Ropf=DℝRoundImplies=D⥰"
    "Rrightarrow=D⇛Rscr=DℛRsh=D↱RuleDelayed=D⧴SHCHcy=CЩSHcy=CШSOFTcy=CЬSacute=CŚSc=D⪼Scaron=CŠScedil=CŞScirc=CŜ"
    "Scy=CСSfr=E𝔖ShortDownArrow=D↓ShortLeftArrow=D←ShortRightArrow=D→ShortUpArrow=D↑Sigma=CΣSmallCircle=D∘Sopf=E𝕊"
    "Sqrt=D√Square=D□SquareIntersection=D⊓SquareSubset=D⊏SquareSubsetEqual=D⊑SquareSuperset=D⊐"
    "SquareSupersetEqual=D⊒SquareUnion=D⊔Sscr=E𝒮Star=D⋆Sub=D⋐Subset=D⋐SubsetEqual=D⊆Succeeds=D≻SucceedsEqual=D⪰"
    "SucceedsSlantEqual=D≽SucceedsTilde=D≿SuchThat=D∋Sum=D∑Sup=D⋑Superset=D⊃SupersetEqual=D⊇Supset=D⋑THORN=CÞ"
    "TRADE=D™TSHcy=CЋTScy=CЦTab=B\011Tau=CΤTcaron=CŤTcedil=CŢTcy=CТTfr=E𝔗Therefore=D∴Theta=CΘThickSpace=G  "
    "ThinSpace=D Tilde=D∼TildeEqual=D≃TildeFullEqual=D≅TildeTilde=D≈Topf=E𝕋TripleDot=D⃛Tscr=E𝒯Tstrok=CŦUacute=CÚ"
    "Uarr=D↟Uarrocir=D⥉Ubrcy=CЎUbreve=CŬUcirc=CÛUcy=CУUdblac=CŰUfr=E𝔘Ugrave=CÙUmacr=CŪUnderBar=B_UnderBrace=D⏟"
    "UnderBracket=D⎵UnderParenthesis=D⏝Union=D⋃UnionPlus=D⊎Uogon=CŲUopf=E𝕌UpArrow=D↑UpArrowBar=D⤒"
    "UpArrowDownArrow=D⇅UpDownArrow=D↕UpEquilibrium=D⥮UpTee=D⊥UpTeeArrow=D↥Uparrow=D⇑Updownarrow=D⇕"
    "UpperLeftArrow=D↖UpperRightArrow=D↗Upsi=CϒUpsilon=CΥUring=CŮUscr=E𝒰Utilde=CŨUuml=CÜVDash=D⊫Vbar=D⫫Vcy=CВ"
    "Vdash=D⊩Vdashl=D⫦Vee=D⋁Verbar=D‖Vert=D‖VerticalBar=D∣VerticalLine=B|VerticalSeparator=D❘VerticalTilde=D≀"
    "VeryThinSpace=D Vfr=E𝔙Vopf=E𝕍Vscr=E𝒱Vvdash=D⊪Wcirc=CŴWedge=D⋀Wfr=E𝔚Wopf=E𝕎Wscr=E𝒲Xfr=E𝔛Xi=CΞXopf=E𝕏Xscr=E𝒳"
    "YAcy=CЯYIcy=CЇYUcy=CЮYacute=CÝYcirc=CŶYcy=CЫYfr=E𝔜Yopf=E𝕐Yscr=E𝒴Yuml=CŸZHcy=CЖZacute=CŹZcaron=CŽZcy=CЗ"
    "Zdot=CŻZeroWidthSpace=D​Zeta=CΖZfr=DℨZopf=DℤZscr=E𝒵aacute+CáCÁabreve+CăCĂac+D∾D∾acE=F∾̳acd+D∿D∿acirc+CâCÂ"
    "acute+C´C´acy+CаCАaelig+CæCÆaf+D⁡D⁡afr+E𝔞E𝔞agrave+CàCÀalefsym+DℵDℵaleph+DℵDℵalpha+CαCΑamacr+CāCĀamalg+D⨿D⨿"
    "amp=B&and+D∧D∧andand+D⩕D⩕andd+D⩜D⩜andslope+D⩘D⩘andv+D⩚D⩚ang+D∠D∠ange+D⦤D⦤angle+D∠D∠angmsd+D∡D∡angmsdaa+D⦨D⦨"
    "angmsdab+D⦩D⦩angmsdac+D⦪D⦪angmsdad+D⦫D⦫angmsdae+D⦬D⦬angmsdaf+D⦭D⦭angmsdag+D⦮D⦮angmsdah+D⦯D⦯angrt+D∟D∟"
    "angrtvb+D⊾D⊾angrtvbd+D⦝D⦝angsph+D∢D∢angst+CÅCÅangzarr+D⍼D⍼aogon+CąCĄaopf+E𝕒E𝕒ap+D≈D≈apE=D⩰apacir+D⩯D⩯"
    "ape+D≊D≊apid+D≋D≋apos+B'B'approx+D≈D≈approxeq+D≊D≊aring+CåCÅascr+E𝒶E𝒶ast+B*B*asymp+D≈D≈asympeq+D≍D≍"
    "atilde+CãCÃauml+CäCÄawconint+D∳D∳awint+D⨑D⨑bNot=D⫭backcong+D≌D≌backepsilon+C϶C϶backprime+D‵D‵backsim+D∽D∽"
    "backsimeq+D⋍D⋍barvee+D⊽D⊽barwed+D⌅D⌅barwedge+D⌅D⌅bbrk+D⎵D⎵bbrktbrk+D⎶D⎶bcong+D≌D≌bcy+CбCБbdquo+D„D„"
    "becaus+D∵D∵because+D∵D∵bemptyv+D⦰D⦰bepsi+C϶C϶bernou+DℬDℬbeta+CβCΒbeth+DℶDℶbetween+D≬D≬bfr+E𝔟E𝔟bigcap+D⋂D⋂"
    "bigcirc+D◯D◯bigcup+D⋃D⋃bigodot+D⨀D⨀bigoplus+D⨁D⨁bigotimes+D⨂D⨂bigsqcup+D⨆D⨆bigstar+D★D★bigtriangledown+D▽D▽"
    "bigtriangleup+D△D△biguplus+D⨄D⨄bigvee+D⋁D⋁bigwedge+D⋀D⋀bkarow+D⤍D⤍blacklozenge+D⧫D⧫blacksquare+D▪D▪"
    "blacktriangle+D▴D▴blacktriangledown+D▾D▾blacktriangleleft+D◂D◂blacktriangleright+D▸D▸blank+D␣D␣blk12+D▒D▒"
    "blk14+D░D░blk34+D▓D▓block+D█D█bne+E=⃥E=⃥bnequiv+G≡⃥G≡⃥bnot+D⌐D⌐bopf+E𝕓E𝕓bot+D⊥D⊥bottom+D⊥D⊥bowtie+D⋈D⋈"
    "boxDL=D╗boxDR=D╔boxDl=D╖boxDr=D╓boxH=D═boxHD=D╦boxHU=D╩boxHd=D╤boxHu=D╧boxUL=D╝boxUR=D╚boxUl=D╜boxUr=D╙"
    "boxV=D║boxVH=D╬boxVL=D╣boxVR=D╠boxVh=D╫boxVl=D╢boxVr=D╟boxbox+D⧉D⧉boxdL=D╕boxdR=D╒boxdl+D┐D┐boxdr+D┌D┌"
    "boxh+D─D─boxhD=D╥boxhU=D╨boxhd+D┬D┬boxhu+D┴D┴boxminus+D⊟D⊟boxplus+D⊞D⊞boxtimes+D⊠D⊠boxuL=D╛boxuR=D╘"
    "boxul+D┘D┘boxur+D└D└boxv+D│D│boxvH=D╪boxvL=D╡boxvR=D╞boxvh+D┼D┼boxvl+D┤D┤boxvr+D├D├bprime+D‵D‵breve+C˘C˘"
    "brvbar+C¦C¦bscr+E𝒷E𝒷bsemi+D⁏D⁏bsim+D∽D∽bsime+D⋍D⋍bsol+B\134B\134bsolb+D⧅D⧅bsolhsub+D⟈D⟈bull+D•D•bullet+D•D•"
    "bump+D≎D≎bumpE=D⪮bumpe+D≏D≏bumpeq+D≏D≏cacute+CćCĆcap+D∩D∩capand+D⩄D⩄capbrcup+D⩉D⩉capcap+D⩋D⩋capcup+D⩇D⩇"
    "capdot+D⩀D⩀caps+G∩︀G∩︀caret+D⁁D⁁caron+CˇCˇccaps+D⩍D⩍ccaron+CčCČccedil+CçCÇccirc+CĉCĈccups+D⩌D⩌ccupssm+D⩐D⩐"
    "cdot+CċCĊcedil+C¸C¸cemptyv+D⦲D⦲cent+C¢C¢centerdot+C·C·cfr+E𝔠E𝔠chcy+CчCЧcheck+D✓D✓checkmark+D✓D✓chi+CχCΧ"
    "cir+D○D○cirE=D⧃circ+CˆCˆcirceq+D≗D≗circlearrowleft+D↺D↺circlearrowright+D↻D↻circledR=C®circledS=DⓈ"
    "circledast+D⊛D⊛circledcirc+D⊚D⊚circleddash+D⊝D⊝cire+D≗D≗cirfnint+D⨐D⨐cirmid+D⫯D⫯cirscir+D⧂D⧂clubs+D♣D♣"
    "clubsuit+D♣D♣colon+B:B:colone+D≔D≔coloneq+D≔D≔comma+B,B,commat+B@B@comp+D∁D∁compfn+D∘D∘complement+D∁D∁"
    "complexes+DℂDℂcong+D≅D≅congdot+D⩭D⩭conint+D∮D∮copf+E𝕔E𝕔coprod+D∐D∐copy=C©copysr=D℗crarr+D↵D↵cross+D✗D✗"
    "cscr+E𝒸E𝒸csub+D⫏D⫏csube+D⫑D⫑csup+D⫐D⫐csupe+D⫒D⫒ctdot+D⋯D⋯cudarrl+D⤸D⤸cudarrr+D⤵D⤵cuepr+D⋞D⋞cuesc+D⋟D⋟"
    "cularr+D↶D↶cularrp+D⤽D⤽cup+D∪D∪cupbrcap+D⩈D⩈cupcap+D⩆D⩆cupcup+D⩊D⩊cupdot+D⊍D⊍cupor+D⩅D⩅cups+G∪︀G∪︀"
    "curarr+D↷D↷curarrm+D⤼D⤼curlyeqprec+D⋞D⋞curlyeqsucc+D⋟D⋟curlyvee+D⋎D⋎curlywedge+D⋏D⋏curren+C¤C¤"
    "curvearrowleft+D↶D↶curvearrowright+D↷D↷cuvee+D⋎D⋎cuwed+D⋏D⋏cwconint+D∲D∲cwint+D∱D∱cylcty+D⌭D⌭dArr=D⇓dHar=D⥥"
    "dagger+D†D†daleth+DℸDℸdarr+D↓D↓dash+D‐D‐dashv+D⊣D⊣dbkarow+D⤏D⤏dblac+C˝C˝dcaron+CďCĎdcy+CдCДdd=Dⅆddagger+D‡D‡"
    "ddarr+D⇊D⇊ddotseq+D⩷D⩷deg+C°C°delta+CδCΔdemptyv+D⦱D⦱dfisht+D⥿D⥿dfr+E𝔡E𝔡dharl+D⇃D⇃dharr+D⇂D⇂diam+D⋄D⋄"
    "diamond+D⋄D⋄diamondsuit+D♦D♦diams+D♦D♦die+C¨C¨digamma+CϝCϜdisin+D⋲D⋲div+C÷C÷divide+C÷C÷divideontimes+D⋇D⋇"
    "divonx+D⋇D⋇djcy+CђCЂdlcorn+D⌞D⌞dlcrop+D⌍D⌍dollar+B$B$dopf+E𝕕E𝕕dot+C˙C˙doteq+D≐D≐doteqdot+D≑D≑dotminus+D∸D∸"
    "dotplus+D∔D∔dotsquare+D⊡D⊡doublebarwedge+D⌆D⌆downarrow+D↓D↓downdownarrows+D⇊D⇊downharpoonleft+D⇃D⇃"
    "downharpoonright+D⇂D⇂drbkarow+D⤐D⤐drcorn+D⌟D⌟drcrop+D⌌D⌌dscr+E𝒹E𝒹dscy+CѕCЅdsol+D⧶D⧶dstrok+CđCĐdtdot+D⋱D⋱"
    "dtri+D▿D▿dtrif+D▾D▾duarr+D⇵D⇵duhar+D⥯D⥯dwangle+D⦦D⦦dzcy+CџCЏdzigrarr+D⟿D⟿eDDot=D⩷eDot=D≑eacute+CéCÉ"
    "easter+D⩮D⩮ecaron+CěCĚecir+D≖D≖ecirc+CêCÊecolon+D≕D≕ecy+CэCЭedot+CėCĖee+DⅇDⅇefDot=D≒efr+E𝔢E𝔢eg+D⪚D⪚"
    "egrave+CèCÈegs+D⪖D⪖egsdot+D⪘D⪘el+D⪙D⪙elinters+D⏧D⏧ell+DℓDℓels+D⪕D⪕elsdot+D⪗D⪗emacr+CēCĒempty+D∅D∅"
    "emptyset+D∅D∅emptyv+D∅D∅emsp13+D D emsp14+D D emsp+D D eng=Cŋensp+D D eogon+CęCĘeopf+E𝕖E𝕖epar+D⋕D⋕"
    "eparsl+D⧣D⧣eplus+D⩱D⩱epsi+CεCΕepsilon+CεCΕepsiv+CϵCΕeqcirc+D≖D≖eqcolon+D≕D≕eqsim+D≂D≂eqslantgtr+D⪖D⪖"
    "eqslantless+D⪕D⪕equals+B=B=equest+D≟D≟equiv+D≡D≡equivDD=D⩸eqvparsl+D⧥D⧥erDot=D≓erarr+D⥱D⥱escr+DℯDℯesdot+D≐D≐"
    "esim+D≂D≂eta+CηCΗeth=Cðeuml+CëCËeuro+D€D€excl+B!B!exist+D∃D∃expectation+DℰDℰexponentiale+DⅇDⅇ"
    "fallingdotseq+D≒D≒fcy+CфCФfemale+D♀D♀ffilig+DﬃDFFIfflig+DﬀCFFffllig+DﬄDFFLffr+E𝔣E𝔣filig+DﬁCFIfjlig+CfjCFJ"
    "flat+D♭D♭fllig+DﬂCFLfltns+D▱D▱fnof+CƒCƑfopf+E𝕗E𝕗forall+D∀D∀fork+D⋔D⋔forkv+D⫙D⫙fpartint+D⨍D⨍frac12+C½C½"
    "frac13+D⅓D⅓frac14+C¼C¼frac15+D⅕D⅕frac16+D⅙D⅙frac18+D⅛D⅛frac23+D⅔D⅔frac25+D⅖D⅖frac34+C¾C¾frac35+D⅗D⅗"
    "frac38+D⅜D⅜frac45+D⅘D⅘frac56+D⅚D⅚frac58+D⅝D⅝frac78+D⅞D⅞frasl+D⁄D⁄frown+D⌢D⌢fscr+E𝒻E𝒻gE=D≧gEl=D⪌gacute+CǵCǴ"
    "gamma+CγCΓgammad+CϝCϜgap+D⪆D⪆gbreve+CğCĞgcirc+CĝCĜgcy+CгCГgdot+CġCĠge+D≥D≥gel+D⋛D⋛geq+D≥D≥geqq+D≧D≧"
    "geqslant+D⩾D⩾ges+D⩾D⩾gescc+D⪩D⪩gesdot+D⪀D⪀gesdoto+D⪂D⪂gesdotol+D⪄D⪄gesl+G⋛︀G⋛︀gesles+D⪔D⪔gfr+E𝔤E𝔤gg+D≫D≫"
    "ggg+D⋙D⋙gimel+DℷDℷgjcy+CѓCЃgl+D≷D≷glE=D⪒gla+D⪥D⪥glj+D⪤D⪤gnE=D≩gnap+D⪊D⪊gnapprox+D⪊D⪊gne+D⪈D⪈gneq+D⪈D⪈"
    "gneqq+D≩D≩gnsim+D⋧D⋧gopf+E𝕘E𝕘grave+B`B`gscr+DℊDℊgsim+D≳D≳gsime+D⪎D⪎gsiml+D⪐D⪐gt=B>gtcc=D⪧gtcir=D⩺gtdot=D⋗"
    "gtlPar=D⦕gtquest=D⩼gtrapprox=D⪆gtrarr=D⥸gtrdot=D⋗gtreqless=D⋛gtreqqless=D⪌gtrless=D≷gtrsim=D≳"
    "gvertneqq+G≩︀G≩︀gvnE=G≩︀hArr=D⇔hairsp+D D half+C½C½hamilt+DℋDℋhardcy+CъCЪharr+D↔D↔harrcir+D⥈D⥈harrw+D↭D↭"
    "hbar+DℏDℏhcirc+CĥCĤhearts+D♥D♥heartsuit+D♥D♥hellip+D…D…hercon+D⊹D⊹hfr+E𝔥E𝔥hksearow+D⤥D⤥hkswarow+D⤦D⤦"
    "hoarr+D⇿D⇿homtht+D∻D∻hookleftarrow+D↩D↩hookrightarrow+D↪D↪hopf+E𝕙E𝕙horbar+D―D―hscr+E𝒽E𝒽hslash+DℏDℏ"
    "hstrok+CħCĦhybull+D⁃D⁃hyphen+D‐D‐iacute+CíCÍic+D⁣D⁣icirc+CîCÎicy+CиCИiecy+CеCЕiexcl+C¡C¡iff+D⇔D⇔ifr+E𝔦E𝔦"
    "igrave+CìCÌii+DⅈDⅈiiiint+D⨌D⨌iiint+D∭D∭iinfin+D⧜D⧜iiota+D℩D℩ijlig+CĳCĲimacr+CīCĪimage+DℑDℑimagline+DℐDℐ"
    "imagpart+DℑDℑimath+CıBIimof+D⊷D⊷imped+CƵCƵin+D∈D∈incare+D℅D℅infin+D∞D∞infintie+D⧝D⧝inodot+CıBIint+D∫D∫"
    "intcal+D⊺D⊺integers+DℤDℤintercal+D⊺D⊺intlarhk+D⨗D⨗intprod+D⨼D⨼iocy+CёCЁiogon+CįCĮiopf+E𝕚E𝕚iota+CιCΙ"
    "iprod+D⨼D⨼iquest+C¿C¿iscr+E𝒾E𝒾isin+D∈D∈isinE=D⋹isindot+D⋵D⋵isins+D⋴D⋴isinsv+D⋳D⋳isinv+D∈D∈it+D⁢D⁢itilde+CĩCĨ"
    "iukcy+CіCІiuml+CïCÏjcirc+CĵCĴjcy+CйCЙjfr+E𝔧E𝔧jmath+CȷCȷjopf+E𝕛E𝕛jscr+E𝒿E𝒿jsercy+CјCЈjukcy+CєCЄkappa+CκCΚ"
    "kappav+CϰCΚkcedil+CķCĶkcy+CкCКkfr+E𝔨E𝔨kgreen+CĸCĸkhcy+CхCХkjcy+CќCЌkopf+E𝕜E𝕜kscr+E𝓀E𝓀lAarr=D⇚lArr=D⇐"
    "lAtail=D⤛lBarr=D⤎lE=D≦lEg=D⪋lHar=D⥢lacute+CĺCĹlaemptyv+D⦴D⦴lagran+DℒDℒlambda+CλCΛlang+D⟨D⟨langd+D⦑D⦑"
    "langle+D⟨D⟨lap+D⪅D⪅laquo+C«C«larr+D←D←larrb+D⇤D⇤larrbfs+D⤟D⤟larrfs+D⤝D⤝larrhk+D↩D↩larrlp+D↫D↫larrpl+D⤹D⤹"
    "larrsim+D⥳D⥳larrtl+D↢D↢lat+D⪫D⪫latail+D⤙D⤙late+D⪭D⪭lates+G⪭︀G⪭︀lbarr+D⤌D⤌lbbrk+D❲D❲lbrace+B{B{lbrack+B[B["
    "lbrke+D⦋D⦋lbrksld+D⦏D⦏lbrkslu+D⦍D⦍lcaron+CľCĽlcedil+CļCĻlceil+D⌈D⌈lcub+B{B{lcy+CлCЛldca+D⤶D⤶ldquo+D“D“"
    "ldquor+D„D„ldrdhar+D⥧D⥧ldrushar+D⥋D⥋ldsh+D↲D↲le+D≤D≤leftarrow+D←D←leftarrowtail+D↢D↢leftharpoondown+D↽D↽"
    "leftharpoonup+D↼D↼leftleftarrows+D⇇D⇇leftrightarrow+D↔D↔leftrightarrows+D⇆D⇆leftrightharpoons+D⇋D⇋"
    "leftrightsquigarrow+D↭D↭leftthreetimes+D⋋D⋋leg+D⋚D⋚leq+D≤D≤leqq+D≦D≦leqslant+D⩽D⩽les+D⩽D⩽lescc+D⪨D⪨"
    "lesdot+D⩿D⩿lesdoto+D⪁D⪁lesdotor+D⪃D⪃lesg+G⋚︀G⋚︀lesges+D⪓D⪓lessapprox+D⪅D⪅lessdot+D⋖D⋖lesseqgtr+D⋚D⋚"
    "lesseqqgtr+D⪋D⪋lessgtr+D≶D≶lesssim+D≲D≲lfisht+D⥼D⥼lfloor+D⌊D⌊lfr+E𝔩E𝔩lg+D≶D≶lgE=D⪑lhard+D↽D↽lharu+D↼D↼"
    "lharul+D⥪D⥪lhblk+D▄D▄ljcy+CљCЉll+D≪D≪llarr+D⇇D⇇llcorner+D⌞D⌞llhard+D⥫D⥫lltri+D◺D◺lmidot+CŀCĿlmoust+D⎰D⎰"
    "lmoustache+D⎰D⎰lnE=D≨lnap+D⪉D⪉lnapprox+D⪉D⪉lne+D⪇D⪇lneq+D⪇D⪇lneqq+D≨D≨lnsim+D⋦D⋦loang+D⟬D⟬loarr+D⇽D⇽"
    "lobrk+D⟦D⟦longleftarrow+D⟵D⟵longleftrightarrow+D⟷D⟷longmapsto+D⟼D⟼longrightarrow+D⟶D⟶looparrowleft+D↫D↫"
    "looparrowright+D↬D↬lopar+D⦅D⦅lopf+E𝕝E𝕝loplus+D⨭D⨭lotimes+D⨴D⨴lowast+D∗D∗lowbar+B_B_loz+D◊D◊lozenge+D◊D◊"
    "lozf+D⧫D⧫lpar+B(B(lparlt+D⦓D⦓lrarr+D⇆D⇆lrcorner+D⌟D⌟lrhar+D⇋D⇋lrhard+D⥭D⥭lrm+D‎D‎lrtri+D⊿D⊿lsaquo+D‹D‹"
    "lscr+E𝓁E𝓁lsh+D↰D↰lsim+D≲D≲lsime+D⪍D⪍lsimg+D⪏D⪏lsqb+B[B[lsquo+D‘D‘lsquor+D‚D‚lstrok+CłCŁlt=B<ltcc=D⪦ltcir=D⩹"
    "ltdot=D⋖lthree=D⋋ltimes=D⋉ltlarr=D⥶ltquest=D⩻ltrPar=D⦖ltri=D◃ltrie=D⊴ltrif=D◂lurdshar+D⥊D⥊luruhar+D⥦D⥦"
    "lvertneqq+G≨︀G≨︀lvnE=G≨︀mDDot=D∺macr+C¯C¯male+D♂D♂malt+D✠D✠maltese+D✠D✠map+D↦D↦mapsto+D↦D↦mapstodown+D↧D↧"
    "mapstoleft+D↤D↤mapstoup+D↥D↥marker+D▮D▮mcomma+D⨩D⨩mcy+CмCМmdash+D—D—measuredangle+D∡D∡mfr+E𝔪E𝔪mho+D℧D℧"
    "micro+CµCΜmid+D∣D∣midast+B*B*midcir+D⫰D⫰middot+C·C·minus+D−D−minusb+D⊟D⊟minusd+D∸D∸minusdu+D⨪D⨪mlcp+D⫛D⫛"
    "mldr+D…D…mnplus+D∓D∓models+D⊧D⊧mopf+E𝕞E𝕞mp+D∓D∓mscr+E𝓂E𝓂mstpos+D∾D∾mu+CμCΜmultimap+D⊸D⊸mumap+D⊸D⊸nGg=F⋙̸"
    "nGt=G≫⃒nGtv=F≫̸nLeftarrow=D⇍nLeftrightarrow=D⇎nLl=F⋘̸nLt=G≪⃒nLtv=F≪̸nRightarrow=D⇏nVDash=D⊯nVdash=D⊮"
    "nabla+D∇D∇nacute+CńCŃnang+G∠⃒G∠⃒nap+D≉D≉napE=F⩰̸napid+F≋̸F≋̸napos+CŉDʼNnapprox+D≉D≉natur+D♮D♮natural+D♮D♮"
    "naturals+DℕDℕnbsp+C C nbump+F≎̸F≎̸nbumpe+F≏̸F≏̸ncap+D⩃D⩃ncaron+CňCŇncedil+CņCŅncong+D≇D≇ncongdot+F⩭̸F⩭̸"
    "ncup+D⩂D⩂ncy+CнCНndash+D–D–ne+D≠D≠neArr=D⇗nearhk+D⤤D⤤nearr+D↗D↗nearrow+D↗D↗nedot+F≐̸F≐̸nequiv+D≢D≢"
    "nesear+D⤨D⤨nesim+F≂̸F≂̸nexist+D∄D∄nexists+D∄D∄nfr+E𝔫E𝔫ngE=F≧̸nge+D≱D≱ngeq+D≱D≱ngeqq+F≧̸F≧̸ngeqslant+F⩾̸F⩾̸"
    "nges+F⩾̸F⩾̸ngsim+D≵D≵ngt+D≯D≯ngtr+D≯D≯nhArr=D⇎nharr+D↮D↮nhpar+D⫲D⫲ni+D∋D∋nis+D⋼D⋼nisd+D⋺D⋺niv+D∋D∋njcy+CњCЊ"
    "nlArr=D⇍nlE=F≦̸nlarr+D↚D↚nldr+D‥D‥nle+D≰D≰nleftarrow+D↚D↚nleftrightarrow+D↮D↮nleq+D≰D≰nleqq+F≦̸F≦̸"
    "nleqslant+F⩽̸F⩽̸nles+F⩽̸F⩽̸nless+D≮D≮nlsim+D≴D≴nlt+D≮D≮nltri+D⋪D⋪nltrie+D⋬D⋬nmid+D∤D∤nopf+E𝕟E𝕟not+C¬C¬"
    "notin+D∉D∉notinE=F⋹̸notindot+F⋵̸F⋵̸notinva+D∉D∉notinvb+D⋷D⋷notinvc+D⋶D⋶notni+D∌D∌notniva+D∌D∌notnivb+D⋾D⋾"
    "notnivc+D⋽D⋽npar+D∦D∦nparallel+D∦D∦nparsl+G⫽⃥G⫽⃥npart+F∂̸F∂̸npolint+D⨔D⨔npr+D⊀D⊀nprcue+D⋠D⋠npre+F⪯̸F⪯̸"
    "nprec+D⊀D⊀npreceq+F⪯̸F⪯̸nrArr=D⇏nrarr+D↛D↛nrarrc+F⤳̸F⤳̸nrarrw+F↝̸F↝̸nrightarrow+D↛D↛nrtri+D⋫D⋫nrtrie+D⋭D⋭"
    "nsc+D⊁D⊁nsccue+D⋡D⋡nsce+F⪰̸F⪰̸nscr+E𝓃E𝓃nshortmid+D∤D∤nshortparallel+D∦D∦nsim+D≁D≁nsime+D≄D≄nsimeq+D≄D≄"
    "nsmid+D∤D∤nspar+D∦D∦nsqsube+D⋢D⋢nsqsupe+D⋣D⋣nsub+D⊄D⊄nsubE=F⫅̸nsube+D⊈D⊈nsubset+G⊂⃒G⊂⃒nsubseteq+D⊈D⊈"
    "nsubseteqq+F⫅̸F⫅̸nsucc+D⊁D⊁nsucceq+F⪰̸F⪰̸nsup+D⊅D⊅nsupE=F⫆̸nsupe+D⊉D⊉nsupset+G⊃⃒G⊃⃒nsupseteq+D⊉D⊉"
    "nsupseteqq+F⫆̸F⫆̸ntgl+D≹D≹ntilde+CñCÑntlg+D≸D≸ntriangleleft+D⋪D⋪ntrianglelefteq+D⋬D⋬ntriangleright+D⋫D⋫"
    "ntrianglerighteq+D⋭D⋭nu+CνCΝnum+B#B#numero+D№D№numsp+D D nvDash=D⊭nvHarr=D⤄nvap+G≍⃒G≍⃒nvdash+D⊬D⊬nvge+G≥⃒G≥⃒"
    "nvgt+E>⃒E>⃒nvinfin+D⧞D⧞nvlArr=D⤂nvle+G≤⃒G≤⃒nvlt+E<⃒E<⃒nvltrie+G⊴⃒G⊴⃒nvrArr=D⤃nvrtrie+G⊵⃒G⊵⃒nvsim+G∼⃒G∼⃒"
    "nwArr=D⇖nwarhk+D⤣D⤣nwarr+D↖D↖nwarrow+D↖D↖nwnear+D⤧D⤧oS=DⓈoacute+CóCÓoast+D⊛D⊛ocir+D⊚D⊚ocirc+CôCÔocy+CоCО"
    "odash+D⊝D⊝odblac+CőCŐodiv+D⨸D⨸odot+D⊙D⊙odsold+D⦼D⦼oelig+CœCŒofcir+D⦿D⦿ofr+E𝔬E𝔬ogon+C˛C˛ograve+CòCÒogt+D⧁D⧁"
    "ohbar+D⦵D⦵ohm+CΩCΩoint+D∮D∮olarr+D↺D↺olcir+D⦾D⦾olcross+D⦻D⦻oline+D‾D‾olt+D⧀D⧀omacr+CōCŌomega+CωCΩ"
    "omicron+CοCΟomid+D⦶D⦶ominus+D⊖D⊖oopf+E𝕠E𝕠opar+D⦷D⦷operp+D⦹D⦹oplus+D⊕D⊕or+D∨D∨orarr+D↻D↻ord+D⩝D⩝order+DℴDℴ"
    "orderof+DℴDℴordf+CªCªordm+CºCºorigof+D⊶D⊶oror+D⩖D⩖orslope+D⩗D⩗orv+D⩛D⩛oscr+DℴDℴoslash+CøCØosol+D⊘D⊘"
    "otilde+CõCÕotimes+D⊗D⊗otimesas+D⨶D⨶ouml+CöCÖovbar+D⌽D⌽par+D∥D∥para+C¶C¶parallel+D∥D∥parsim+D⫳D⫳parsl+D⫽D⫽"
    "part+D∂D∂pcy+CпCПpercnt+B%B%period+B.B.permil+D‰D‰perp+D⊥D⊥pertenk+D‱D‱pfr+E𝔭E𝔭phi+CφCΦphiv+CϕCΦphmmat+DℳDℳ"
    "phone+D☎D☎pi+CπCΠpitchfork+D⋔D⋔piv+CϖCΠplanck+DℏDℏplanckh+DℎDℎplankv+DℏDℏplus+B+B+plusacir+D⨣D⨣plusb+D⊞D⊞"
    "pluscir+D⨢D⨢plusdo+D∔D∔plusdu+D⨥D⨥pluse+D⩲D⩲plusmn+C±C±plussim+D⨦D⨦plustwo+D⨧D⨧pm+C±C±pointint+D⨕D⨕popf+E𝕡E𝕡"
    "pound+C£C£pr+D≺D≺prE=D⪳prap+D⪷D⪷prcue+D≼D≼pre+D⪯D⪯prec+D≺D≺precapprox+D⪷D⪷preccurlyeq+D≼D≼preceq+D⪯D⪯"
    "precnapprox+D⪹D⪹precneqq+D⪵D⪵precnsim+D⋨D⋨precsim+D≾D≾prime+D′D′primes+DℙDℙprnE=D⪵prnap+D⪹D⪹prnsim+D⋨D⋨"
    "prod+D∏D∏profalar+D⌮D⌮profline+D⌒D⌒profsurf+D⌓D⌓prop+D∝D∝propto+D∝D∝prsim+D≾D≾prurel+D⊰D⊰pscr+E𝓅E𝓅psi+CψCΨ"
    "puncsp+D D qfr+E𝔮E𝔮qint+D⨌D⨌qopf+E𝕢E𝕢qprime+D⁗D⁗qscr+E𝓆E𝓆quaternions+DℍDℍquatint+D⨖D⨖quest+B\077B\077"
    "questeq+D≟D≟quot=B\042rAarr=D⇛rArr=D⇒rAtail=D⤜rBarr=D⤏rHar=D⥤race+F∽̱F∽̱racute+CŕCŔradic+D√D√raemptyv+D⦳D⦳"
    "rang+D⟩D⟩rangd+D⦒D⦒range+D⦥D⦥rangle+D⟩D⟩raquo+C»C»rarr+D→D→rarrap+D⥵D⥵rarrb+D⇥D⇥rarrbfs+D⤠D⤠rarrc+D⤳D⤳"
    "rarrfs+D⤞D⤞rarrhk+D↪D↪rarrlp+D↬D↬rarrpl+D⥅D⥅rarrsim+D⥴D⥴rarrtl+D↣D↣rarrw+D↝D↝ratail+D⤚D⤚ratio+D∶D∶"
    "rationals+DℚDℚrbarr+D⤍D⤍rbbrk+D❳D❳rbrace+B}B}rbrack+B]B]rbrke+D⦌D⦌rbrksld+D⦎D⦎rbrkslu+D⦐D⦐rcaron+CřCŘ"
    "rcedil+CŗCŖrceil+D⌉D⌉rcub+B}B}rcy+CрCРrdca+D⤷D⤷rdldhar+D⥩D⥩rdquo+D”D”rdquor+D”D”rdsh+D↳D↳real+DℜDℜ"
    "realine+DℛDℛrealpart+DℜDℜreals+DℝDℝrect+D▭D▭reg=C®rfisht+D⥽D⥽rfloor+D⌋D⌋rfr+E𝔯E𝔯rhard+D⇁D⇁rharu+D⇀D⇀"
    "rharul+D⥬D⥬rho+CρCΡrhov+CϱCΡrightarrow+D→D→rightarrowtail+D↣D↣rightharpoondown+D⇁D⇁rightharpoonup+D⇀D⇀"
    "rightleftarrows+D⇄D⇄rightleftharpoons+D⇌D⇌rightrightarrows+D⇉D⇉rightsquigarrow+D↝D↝rightthreetimes+D⋌D⋌"
    "ring+C˚C˚risingdotseq+D≓D≓rlarr+D⇄D⇄rlhar+D⇌D⇌rlm+D‏D‏rmoust+D⎱D⎱rmoustache+D⎱D⎱rnmid+D⫮D⫮roang+D⟭D⟭"
    "roarr+D⇾D⇾robrk+D⟧D⟧ropar+D⦆D⦆ropf+E𝕣E𝕣roplus+D⨮D⨮rotimes+D⨵D⨵rpar+B)B)rpargt+D⦔D⦔rppolint+D⨒D⨒rrarr+D⇉D⇉"
    "rsaquo+D›D›rscr+E𝓇E𝓇rsh+D↱D↱rsqb+B]B]rsquo+D’D’rsquor+D’D’rthree+D⋌D⋌rtimes+D⋊D⋊rtri+D▹D▹rtrie+D⊵D⊵"
    "rtrif+D▸D▸rtriltri+D⧎D⧎ruluhar+D⥨D⥨rx+D℞D℞sacute+CśCŚsbquo+D‚D‚sc+D≻D≻scE=D⪴scap+D⪸D⪸scaron+CšCŠsccue+D≽D≽"
    "sce+D⪰D⪰scedil+CşCŞscirc+CŝCŜscnE=D⪶scnap+D⪺D⪺scnsim+D⋩D⋩scpolint+D⨓D⨓scsim+D≿D≿scy+CсCСsdot+D⋅D⋅sdotb+D⊡D⊡"
    "sdote+D⩦D⩦seArr=D⇘searhk+D⤥D⤥searr+D↘D↘searrow+D↘D↘sect+C§C§semi+B;B;seswar+D⤩D⤩setminus+D∖D∖setmn+D∖D∖"
    "sext+D✶D✶sfr+E𝔰E𝔰sfrown+D⌢D⌢sharp+D♯D♯shchcy+CщCЩshcy+CшCШshortmid+D∣D∣shortparallel+D∥D∥shy+C­C­sigma+CσCΣ"
    "sigmaf+CςCΣsigmav+CςCΣsim+D∼D∼simdot+D⩪D⩪sime+D≃D≃simeq+D≃D≃simg+D⪞D⪞simgE=D⪠siml+D⪝D⪝simlE=D⪟simne+D≆D≆"
    "simplus+D⨤D⨤simrarr+D⥲D⥲slarr+D←D←smallsetminus+D∖D∖smashp+D⨳D⨳smeparsl+D⧤D⧤smid+D∣D∣smile+D⌣D⌣smt+D⪪D⪪"
    "smte+D⪬D⪬smtes+G⪬︀G⪬︀softcy+CьCЬsol+B/B/solb+D⧄D⧄solbar+D⌿D⌿sopf+E𝕤E𝕤spades+D♠D♠spadesuit+D♠D♠spar+D∥D∥"
    "sqcap+D⊓D⊓sqcaps+G⊓︀G⊓︀sqcup+D⊔D⊔sqcups+G⊔︀G⊔︀sqsub+D⊏D⊏sqsube+D⊑D⊑sqsubset+D⊏D⊏sqsubseteq+D⊑D⊑sqsup+D⊐D⊐"
    "sqsupe+D⊒D⊒sqsupset+D⊐D⊐sqsupseteq+D⊒D⊒squ+D□D□square+D□D□squarf+D▪D▪squf+D▪D▪srarr+D→D→sscr+E𝓈E𝓈ssetmn+D∖D∖"
    "ssmile+D⌣D⌣sstarf+D⋆D⋆star+D☆D☆starf+D★D★straightepsilon+CϵCΕstraightphi+CϕCΦstrns+C¯C¯sub+D⊂D⊂subE=D⫅"
    "subdot+D⪽D⪽sube+D⊆D⊆subedot+D⫃D⫃submult+D⫁D⫁subnE=D⫋subne+D⊊D⊊subplus+D⪿D⪿subrarr+D⥹D⥹subset+D⊂D⊂"
    "subseteq+D⊆D⊆subseteqq+D⫅D⫅subsetneq+D⊊D⊊subsetneqq+D⫋D⫋subsim+D⫇D⫇subsub+D⫕D⫕subsup+D⫓D⫓succ+D≻D≻"
    "succapprox+D⪸D⪸succcurlyeq+D≽D≽succeq+D⪰D⪰succnapprox+D⪺D⪺succneqq+D⪶D⪶succnsim+D⋩D⋩succsim+D≿D≿sum+D∑D∑"
    "sung+D♪D♪sup1+C¹C¹sup2+C²C²sup3+C³C³sup+D⊃D⊃supE=D⫆supdot+D⪾D⪾supdsub+D⫘D⫘supe+D⊇D⊇supedot+D⫄D⫄suphsol+D⟉D⟉"
    "suphsub+D⫗D⫗suplarr+D⥻D⥻supmult+D⫂D⫂supnE=D⫌supne+D⊋D⊋supplus+D⫀D⫀supset+D⊃D⊃supseteq+D⊇D⊇supseteqq+D⫆D⫆"
    "supsetneq+D⊋D⊋supsetneqq+D⫌D⫌supsim+D⫈D⫈supsub+D⫔D⫔supsup+D⫖D⫖swArr=D⇙swarhk+D⤦D⤦swarr+D↙D↙swarrow+D↙D↙"
    "swnwar+D⤪D⤪szlig+CßCSStarget+D⌖D⌖tau+CτCΤtbrk+D⎴D⎴tcaron+CťCŤtcedil+CţCŢtcy+CтCТtdot+D⃛D⃛telrec+D⌕D⌕tfr+E𝔱E𝔱"
    "there4+D∴D∴therefore+D∴D∴theta+CθCΘthetasym+CϑCΘthetav+CϑCΘthickapprox+D≈D≈thicksim+D∼D∼thinsp+D D "
    "thkap+D≈D≈thksim+D∼D∼thorn=Cþtilde+C˜C˜times+C×C×timesb+D⊠D⊠timesbar+D⨱D⨱timesd+D⨰D⨰tint+D∭D∭toea+D⤨D⤨"
    "top+D⊤D⊤topbot+D⌶D⌶topcir+D⫱D⫱topf+E𝕥E𝕥topfork+D⫚D⫚tosa+D⤩D⤩tprime+D‴D‴trade=D™triangle+D▵D▵"
    "triangledown+D▿D▿triangleleft+D◃D◃trianglelefteq+D⊴D⊴triangleq+D≜D≜triangleright+D▹D▹trianglerighteq+D⊵D⊵"
    "tridot+D◬D◬trie+D≜D≜triminus+D⨺D⨺triplus+D⨹D⨹trisb+D⧍D⧍tritime+D⨻D⨻trpezium+D⏢D⏢tscr+E𝓉E𝓉tscy+CцCЦtshcy+CћCЋ"
    "tstrok+CŧCŦtwixt+D≬D≬twoheadleftarrow+D↞D↞twoheadrightarrow+D↠D↠uArr=D⇑uHar=D⥣uacute+CúCÚuarr+D↑D↑ubrcy+CўCЎ"
    "ubreve+CŭCŬucirc+CûCÛucy+CуCУudarr+D⇅D⇅udblac+CűCŰudhar+D⥮D⥮ufisht+D⥾D⥾ufr+E𝔲E𝔲ugrave+CùCÙuharl+D↿D↿"
    "uharr+D↾D↾uhblk+D▀D▀ulcorn+D⌜D⌜ulcorner+D⌜D⌜ulcrop+D⌏D⌏ultri+D◸D◸umacr+CūCŪuml+C¨C¨uogon+CųCŲuopf+E𝕦E𝕦"
    "uparrow+D↑D↑updownarrow+D↕D↕upharpoonleft+D↿D↿upharpoonright+D↾D↾uplus+D⊎D⊎upsi+CυCΥupsih+CϒCϒupsilon+CυCΥ"
    "upuparrows+D⇈D⇈urcorn+D⌝D⌝urcorner+D⌝D⌝urcrop+D⌎D⌎uring+CůCŮurtri+D◹D◹uscr+E𝓊E𝓊utdot+D⋰D⋰utilde+CũCŨ"
    "utri+D▵D▵utrif+D▴D▴uuarr+D⇈D⇈uuml+CüCÜuwangle+D⦧D⦧vArr=D⇕vBar=D⫨vBarv=D⫩vDash=D⊨vangrt+D⦜D⦜varepsilon+CϵCΕ"
    "varkappa+CϰCΚvarnothing+D∅D∅varphi+CϕCΦvarpi+CϖCΠvarpropto+D∝D∝varr+D↕D↕varrho+CϱCΡvarsigma+CςCΣ"
    "varsubsetneq+G⊊︀G⊊︀varsubsetneqq+G⫋︀G⫋︀varsupsetneq+G⊋︀G⊋︀varsupsetneqq+G⫌︀G⫌︀vartheta+CϑCΘ"
    "vartriangleleft+D⊲D⊲vartriangleright+D⊳D⊳vcy+CвCВvdash+D⊢D⊢vee+D∨D∨veebar+D⊻D⊻veeeq+D≚D≚vellip+D⋮D⋮"
    "verbar+B|B|vert+B|B|vfr+E𝔳E𝔳vltri+D⊲D⊲vnsub+G⊂⃒G⊂⃒vnsup+G⊃⃒G⊃⃒vopf+E𝕧E𝕧vprop+D∝D∝vrtri+D⊳D⊳vscr+E𝓋E𝓋"
    "vsubnE=G⫋︀vsubne+G⊊︀G⊊︀vsupnE=G⫌︀vsupne+G⊋︀G⊋︀vzigzag+D⦚D⦚wcirc+CŵCŴwedbar+D⩟D⩟wedge+D∧D∧wedgeq+D≙D≙"
    "weierp+D℘D℘wfr+E𝔴E𝔴wopf+E𝕨E𝕨wp+D℘D℘wr+D≀D≀wreath+D≀D≀wscr+E𝓌E𝓌xcap+D⋂D⋂xcirc+D◯D◯xcup+D⋃D⋃xdtri+D▽D▽xfr+E𝔵E𝔵"
    "xhArr=D⟺xharr+D⟷D⟷xi+CξCΞxlArr=D⟸xlarr+D⟵D⟵xmap+D⟼D⟼xnis+D⋻D⋻xodot+D⨀D⨀xopf+E𝕩E𝕩xoplus+D⨁D⨁xotime+D⨂D⨂"
    "xrArr=D⟹xrarr+D⟶D⟶xscr+E𝓍E𝓍xsqcup+D⨆D⨆xuplus+D⨄D⨄xutri+D△D△xvee+D⋁D⋁xwedge+D⋀D⋀yacute+CýCÝyacy+CяCЯ"
    "ycirc+CŷCŶycy+CыCЫyen+C¥C¥yfr+E𝔶E𝔶yicy+CїCЇyopf+E𝕪E𝕪yscr+E𝓎E𝓎yucy+CюCЮyuml+CÿCŸzacute+CźCŹzcaron+CžCŽ"
    "zcy+CзCЗzdot+CżCŻzeetrf+DℨDℨzeta+CζCΖzfr+E𝔷E𝔷zhcy+CжCЖzigrarr+D⇝D⇝zopf+E𝕫E𝕫zscr+E𝓏E𝓏zwj+D‍D‍zwnj+D‌D‌"
/* END GENERATED ENTITIES */
    ;

/* Value of the entity whose name is name[0..len) (no '&', no ';'), or NULL.
 * *vlen receives the byte length of the UTF-8 value. */
static const char *entity_lookup(const char *name, size_t len, size_t *vlen) {
    const char *p = k_entities;
    while (*p) {
        const char *nm = p;
        while (*p != '=' && *p != '+') p++;
        size_t nlen = (size_t)(p - nm);
        bool has_upper = *p == '+';
        p++;
        size_t l1 = (size_t)(*p++ - 'A');
        const char *v1 = p;
        p += l1;
        size_t l2 = 0;
        const char *v2 = NULL;
        if (has_upper) {
            l2 = (size_t)(*p++ - 'A');
            v2 = p;
            p += l2;
        }
        if (nlen != len) continue;
        if (!memcmp(nm, name, len)) {
            *vlen = l1;
            return v1;
        }
        if (has_upper) {
            size_t k = 0;
            for (; k < len; k++) {
                char u = nm[k] >= 'a' && nm[k] <= 'z' ? (char)(nm[k] - 32) : nm[k];
                if (name[k] != u) break;
            }
            if (k == len) {
                *vlen = l2;
                return v2;
            }
        }
    }
    return NULL;
}

/* html.unescape's replacements for numeric references to bad code points;
 * also ftfy's sloppy-windows-1252 reading of C1 controls (U+0080-U+009F). */
static const uint16_t k_cp1252_c1[32] = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
    0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
    0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
    0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
};

/* html.unescape's result for a numeric reference: code point, or -1 for
 * nothing (the reference is dropped). */
static int64_t charref(uint64_t num) {
    if (num == 0) return 0xFFFD;
    if (num == 0x0D) return 0x0D;
    if (num >= 0x80 && num <= 0x9F) return k_cp1252_c1[num - 0x80];
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) return 0xFFFD;
    if ((num >= 0x01 && num <= 0x08) || num == 0x0B ||
        (num >= 0x0E && num <= 0x1F) || num == 0x7F ||
        (num >= 0xFDD0 && num <= 0xFDEF) || (num & 0xFFFE) == 0xFFFE)
        return -1;
    return (int64_t)num;
}

static bool is_alnum_ascii(uint32_t c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int hex_val(uint32_t c) {
    if (c >= '0' && c <= '9') return (int)(c - '0');
    if (c >= 'a' && c <= 'f') return (int)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return (int)(c - 'A' + 10);
    return -1;
}

/* Numeric reference "&#" s ";": the replacement, as ftfy computes it with
 * html.unescape and then keeps the original text if the result still holds
 * a ';'. Returns false to keep the original text. */
static bool numeric_entity(const uint32_t *s, size_t len, int64_t *cp) {
    uint64_t num = 0;
    size_t i = 0;
    if (s[0] == 'x' || s[0] == 'X') {
        if (len < 2) return false;
        for (i = 1; i < len; i++) {
            int h = hex_val(s[i]);
            if (h < 0) return false;
            num = num > 0x10FFFF ? num : num * 16 + (uint64_t)h;
        }
    } else {
        for (i = 0; i < len; i++) {
            if (s[i] < '0' || s[i] > '9') return false;
            num = num > 0x10FFFF ? num : num * 10 + (s[i] - '0');
        }
    }
    *cp = charref(num);
    return *cp != ';';
}

static sdc_status unescape_html(const sdc_u32vec *in, sdc_u32vec *out) {
    out->n = 0;
    const uint32_t *v = in->v;
    size_t n = in->n, i = 0;
    while (i < n) {
        if (v[i] != '&') {
            SDC_TRY(sdc_u32_push(out, v[i++]));
            continue;
        }
        size_t j = i + 1;
        bool hash = j < n && v[j] == '#';
        if (hash) j++;
        size_t k = j;
        while (k < n && k - j <= 24 && is_alnum_ascii(v[k])) k++;
        size_t len = k - j;
        if (len < 1 || len > 24 || k >= n || v[k] != ';') {
            SDC_TRY(sdc_u32_push(out, v[i++]));
            continue;
        }
        /* v[i..k] is a match of &#?[0-9A-Za-z]{1,24}; */
        if (hash) {
            int64_t cp;
            if (numeric_entity(v + j, len, &cp)) {
                if (cp >= 0) SDC_TRY(sdc_u32_push(out, (uint32_t)cp));
            } else {
                SDC_TRY(sdc_u32_append(out, v + i, k + 1 - i));
            }
        } else {
            char name[25];
            for (size_t t = 0; t < len; t++) name[t] = (char)v[j + t];
            size_t vlen;
            const char *val = entity_lookup(name, len, &vlen);
            if (val) {
                SDC_TRY(sdc_text_from_utf8(val, vlen, out));
            } else {
                SDC_TRY(sdc_u32_append(out, v + i, k + 1 - i));
            }
        }
        i = k + 1;
    }
    return SDC_OK;
}

/* ---- the single-character fixers --------------------------------------- */

/* fix_latin_ligatures: ftfy.chardata.LIGATURES */
static const struct { uint32_t cp; uint32_t to[3]; } k_ligatures[] = {
    {0x0132, {'I', 'J'}}, {0x0133, {'i', 'j'}}, {0x0149, {0x02BC, 'n'}},
    {0x01F1, {'D', 'Z'}}, {0x01F2, {'D', 'z'}}, {0x01F3, {'d', 'z'}},
    {0x01C4, {'D', 0x017D}}, {0x01C5, {'D', 0x017E}}, {0x01C6, {'d', 0x017E}},
    {0x01C7, {'L', 'J'}}, {0x01C8, {'L', 'j'}}, {0x01C9, {'l', 'j'}},
    {0x01CA, {'N', 'J'}}, {0x01CB, {'N', 'j'}}, {0x01CC, {'n', 'j'}},
    {0xFB00, {'f', 'f'}}, {0xFB01, {'f', 'i'}}, {0xFB02, {'f', 'l'}},
    {0xFB03, {'f', 'f', 'i'}}, {0xFB04, {'f', 'f', 'l'}},
    {0xFB05, {0x017F, 't'}}, {0xFB06, {'s', 't'}},
};

/* fix_character_width: U+3000 -> ' ', U+FF01..U+FFEF -> their NFKC form. */
static sdc_status push_width_fixed(sdc_u32vec *out, uint32_t cp) {
    if (cp == 0x3000) return sdc_u32_push(out, ' ');
    utf8proc_uint8_t src[4], *dst = NULL;
    utf8proc_ssize_t n = utf8proc_encode_char((utf8proc_int32_t)cp, src);
    utf8proc_ssize_t m = utf8proc_map(src, n, &dst, (utf8proc_option_t)(
        UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT));
    if (m < 0) {
        free(dst);
        return sdc_fail(SDC_ERR_OOM, "text_clean: NFKC of U+%04X failed: %s",
                        (unsigned)cp, utf8proc_errmsg(m));
    }
    sdc_status st = sdc_text_from_utf8((const char *)dst, (size_t)m, out);
    free(dst);
    return st;
}

/* remove_control_chars: ftfy.chardata.CONTROL_CHARS */
static bool is_removed_control(uint32_t c) {
    return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F ||
           (c >= 0x206A && c <= 0x206F) || c == 0xFEFF ||
           (c >= 0xFFF9 && c <= 0xFFFC);
}

/* Python's re \d (Unicode Nd, Unicode 14.0) */
static bool is_py_decimal(uint32_t c) {
    if (c >= '0' && c <= '9') return true;
    if (c < 0x660) return false;
    /* Kawi and Nag Mundari digits are new in Unicode 15.0 */
    if ((c >= 0x11F50 && c <= 0x11F59) || (c >= 0x1E4F0 && c <= 0x1E4F9)) return false;
    return utf8proc_category((utf8proc_int32_t)c) == UTF8PROC_CATEGORY_ND;
}

/* One pass of ftfy's fixers after unescape_html (fix_encoding excluded):
 * fix_c1_controls, fix_latin_ligatures, fix_character_width,
 * uncurl_quotes, fix_line_breaks, (fix_surrogates: nothing to do on valid
 * UTF-8), remove_terminal_escapes, remove_control_chars. Each fixer maps
 * single characters except line breaks (CRLF) and terminal escapes, whose
 * patterns only involve characters that no earlier fixer produces or
 * removes, so the whole pass can run in one sweep per stage. */
static sdc_status char_fixers(const sdc_u32vec *in, sdc_u32vec *out) {
    sdc_u32vec *tmp = out;
    tmp->n = 0;
    for (size_t i = 0; i < in->n; i++) {
        uint32_t c = in->v[i];
        if (c >= 0x80 && c <= 0x9F) c = k_cp1252_c1[c - 0x80];
        bool done = false;
        if ((c >= 0x0132 && c <= 0x01F3) || (c >= 0xFB00 && c <= 0xFB06)) {
            for (size_t k = 0; k < sizeof k_ligatures / sizeof k_ligatures[0]; k++) {
                if (k_ligatures[k].cp != c) continue;
                for (int t = 0; t < 3 && k_ligatures[k].to[t]; t++) {
                    uint32_t d = k_ligatures[k].to[t];
                    if (d == 0x02BC) d = '\''; /* uncurl_quotes */
                    SDC_TRY(sdc_u32_push(tmp, d));
                }
                done = true;
                break;
            }
        }
        if (done) continue;
        if (c == 0x3000 || (c >= 0xFF01 && c <= 0xFFEF)) {
            size_t at = tmp->n;
            SDC_TRY(push_width_fixed(tmp, c));
            /* later single-character fixers on what width produced */
            for (size_t t = at; t < tmp->n; t++) {
                uint32_t d = tmp->v[t];
                if (d == 0x02BC || (d >= 0x2018 && d <= 0x201B)) tmp->v[t] = '\'';
                else if (d >= 0x201C && d <= 0x201F) tmp->v[t] = '"';
            }
            continue;
        }
        if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B)) c = '\'';
        else if (c >= 0x201C && c <= 0x201F) c = '"';
        SDC_TRY(sdc_u32_push(tmp, c));
    }
    return SDC_OK;
}

/* fix_line_breaks, remove_terminal_escapes, remove_control_chars, in
 * place. */
static void breaks_escapes_controls(sdc_u32vec *b) {
    size_t w = 0, n = b->n;
    uint32_t *v = b->v;
    /* line breaks: \r\n -> \n, then \r, U+2028, U+2029, U+0085 -> \n */
    for (size_t i = 0; i < n; i++) {
        uint32_t c = v[i];
        if (c == '\r' && i + 1 < n && v[i + 1] == '\n') continue;
        if (c == '\r' || c == 0x2028 || c == 0x2029 || c == 0x85) c = '\n';
        v[w++] = c;
    }
    n = w;
    /* ANSI escapes: \033 \[ (\d|;)* [a-zA-Z] */
    w = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] == 0x1B && i + 1 < n && v[i + 1] == '[') {
            size_t k = i + 2;
            while (k < n && (v[k] == ';' || is_py_decimal(v[k]))) k++;
            if (k < n && ((v[k] >= 'a' && v[k] <= 'z') || (v[k] >= 'A' && v[k] <= 'Z'))) {
                i = k;
                continue;
            }
        }
        v[w++] = v[i];
    }
    n = w;
    w = 0;
    for (size_t i = 0; i < n; i++)
        if (!is_removed_control(v[i])) v[w++] = v[i];
    b->n = w;
}

static bool all_ascii(const sdc_u32vec *b) {
    for (size_t i = 0; i < b->n; i++)
        if (b->v[i] >= 0x80) return false;
    return true;
}

/* unicodedata.normalize("NFC", text) */
static sdc_status nfc(const sdc_u32vec *in, sdc_u32vec *out) {
    out->n = 0;
    if (all_ascii(in)) return sdc_u32_append(out, in->v, in->n);
    size_t cap = in->n * 4 + 1;
    char *buf = malloc(cap);
    if (!buf) return sdc_fail(SDC_ERR_OOM, "text_clean: out of memory (NFC)");
    size_t len = 0;
    for (size_t i = 0; i < in->n; i++) len += (size_t)sdc_text_utf8_char(in->v[i], buf + len);
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)buf, (utf8proc_ssize_t)len,
                                      &dst, (utf8proc_option_t)(UTF8PROC_STABLE |
                                                                UTF8PROC_COMPOSE));
    free(buf);
    if (m < 0) {
        free(dst);
        return sdc_fail(SDC_ERR_OOM, "text_clean: NFC failed: %s", utf8proc_errmsg(m));
    }
    sdc_status st = sdc_text_from_utf8((const char *)dst, (size_t)m, out);
    free(dst);
    return st;
}

/* ftfy.fix_and_explain on one segment: the fixers until nothing changes. */
static sdc_status fix_segment(const uint32_t *seg, size_t n, bool html,
                              sdc_u32vec *out, sdc_u32vec *a, sdc_u32vec *b) {
    a->n = 0;
    SDC_TRY(sdc_u32_append(a, seg, n));
    for (;;) {
        sdc_u32vec orig = {0};
        SDC_TRY(sdc_u32_append(&orig, a->v, a->n));
        sdc_status st = SDC_OK;
        if (html) {
            st = unescape_html(a, b);
            if (st == SDC_OK) u32_swap(a, b);
        }
        if (st == SDC_OK) st = char_fixers(a, b);
        if (st == SDC_OK) {
            u32_swap(a, b);
            breaks_escapes_controls(a);
            st = nfc(a, b);
        }
        if (st == SDC_OK) u32_swap(a, b);
        bool same = st == SDC_OK && u32_equal(a, &orig);
        sdc_u32_free(&orig);
        if (st != SDC_OK) return st;
        if (same) return sdc_u32_append(out, a->v, a->n);
    }
}

sdc_status sdc_text_ftfy(const uint32_t *in, size_t n, sdc_u32vec *out) {
    const size_t max_decode_length = 1000000;
    sdc_u32vec a = {0}, b = {0};
    sdc_status st = SDC_OK;
    bool html = true; /* unescape_html="auto": off from the first line with '<' */
    out->n = 0;
    size_t pos = 0;
    while (pos < n && st == SDC_OK) {
        size_t end = pos;
        while (end < n && in[end] != '\n') end++;
        end = end < n ? end + 1 : n;
        if (end - pos > max_decode_length) end = pos + max_decode_length;
        for (size_t i = pos; i < end && html; i++)
            if (in[i] == '<') html = false;
        st = fix_segment(in + pos, end - pos, html, out, &a, &b);
        pos = end;
    }
    sdc_u32_free(&a);
    sdc_u32_free(&b);
    return st;
}

/* ---- whitespace_clean and str.lower() ---------------------------------- */

/* the regex module's \s */
bool sdc_text_is_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
           c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Python's str.isspace() */
static bool is_py_space(uint32_t c) {
    return sdc_text_is_space(c) || (c >= 0x1C && c <= 0x1F);
}

/* Python 3.11's Case_Ignorable and Cased (Unicode 14.0), as used by
 * str.lower() for the final sigma, from utf8proc categories plus the
 * exceptions below. */
static const struct { uint32_t lo, hi; char cls; } k_case_exceptions[] = {
    {0x00AA, 0x00AA, 'C'}, {0x00BA, 0x00BA, 'C'}, {0x0ECE, 0x0ECE, 'O'},
    {0x10EFD, 0x10EFF, 'O'}, {0x11241, 0x11241, 'O'}, {0x11F00, 0x11F01, 'O'},
    {0x11F36, 0x11F3A, 'O'}, {0x11F40, 0x11F40, 'O'}, {0x11F42, 0x11F42, 'O'},
    {0x13439, 0x13440, 'O'}, {0x13447, 0x13455, 'O'}, {0x1DF25, 0x1DF2A, 'O'},
    {0x1E030, 0x1E06D, 'O'}, {0x1E08F, 0x1E08F, 'O'}, {0x1E4EB, 0x1E4EF, 'O'},
    {0x1F130, 0x1F149, 'C'}, {0x1F150, 0x1F169, 'C'}, {0x1F170, 0x1F189, 'C'},
};

/* 'I' case-ignorable, 'C' cased, 'O' neither */
static char case_class(uint32_t cp) {
    for (size_t i = 0; i < sizeof k_case_exceptions / sizeof k_case_exceptions[0]; i++)
        if (cp >= k_case_exceptions[i].lo && cp <= k_case_exceptions[i].hi)
            return k_case_exceptions[i].cls;
    static const uint32_t mid[] = {0x27, 0x2E, 0x3A, 0xB7, 0x387, 0x55F, 0x5F4,
                                   0x2018, 0x2019, 0x2024, 0x2027, 0xFE13, 0xFE52,
                                   0xFE55, 0xFF07, 0xFF0E, 0xFF1A};
    utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)cp);
    if (cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_ME ||
        cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_LM ||
        cat == UTF8PROC_CATEGORY_SK)
        return 'I';
    for (size_t i = 0; i < sizeof mid / sizeof mid[0]; i++)
        if (mid[i] == cp) return 'I';
    if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL ||
        cat == UTF8PROC_CATEGORY_LT ||
        utf8proc_tolower((utf8proc_int32_t)cp) != (utf8proc_int32_t)cp ||
        utf8proc_toupper((utf8proc_int32_t)cp) != (utf8proc_int32_t)cp)
        return 'C';
    return 'O';
}

/* CPython's handle_capital_sigma: U+03A3 lowers to final U+03C2 after a
 * cased letter (skipping case-ignorables) unless another cased letter
 * follows (again skipping case-ignorables). */
static uint32_t lower_sigma(const uint32_t *v, size_t n, size_t i) {
    size_t j = i;
    char c = 'O';
    while (j > 0) {
        c = case_class(v[--j]);
        if (c != 'I') break;
    }
    bool final = c == 'C';
    if (final && i + 1 < n) {
        c = 'O';
        for (j = i + 1; j < n; j++) {
            c = case_class(v[j]);
            if (c != 'I') break;
        }
        final = j == n || c != 'C';
    }
    return final ? 0x3C2 : 0x3C3;
}

sdc_status sdc_text_clean_lower(const uint32_t *in, size_t n, sdc_u32vec *out) {
    sdc_u32vec ws = {0};
    sdc_status st = SDC_OK;
    out->n = 0;
    /* re.sub(r"\s+", " ", text) */
    for (size_t i = 0; i < n && st == SDC_OK; i++) {
        if (sdc_text_is_space(in[i])) {
            while (i + 1 < n && sdc_text_is_space(in[i + 1])) i++;
            st = sdc_u32_push(&ws, ' ');
        } else {
            st = sdc_u32_push(&ws, in[i]);
        }
    }
    /* .strip() */
    size_t lo = 0, hi = ws.n;
    while (lo < hi && is_py_space(ws.v[lo])) lo++;
    while (hi > lo && is_py_space(ws.v[hi - 1])) hi--;
    /* .lower() */
    for (size_t i = lo; i < hi && st == SDC_OK; i++) {
        uint32_t c = ws.v[i];
        if (c == 0x130) { /* the one unconditional SpecialCasing entry */
            st = sdc_u32_push(out, 'i');
            if (st == SDC_OK) st = sdc_u32_push(out, 0x307);
        } else if (c == 0x3A3) {
            st = sdc_u32_push(out, lower_sigma(ws.v + lo, hi - lo, i - lo));
        } else {
            st = sdc_u32_push(out, (uint32_t)utf8proc_tolower((utf8proc_int32_t)c));
        }
    }
    sdc_u32_free(&ws);
    return st;
}
